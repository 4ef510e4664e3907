"""`agora`: see `agora --help`, and docs/operations.md."""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import os
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import redis
from eventsourcing.persistence import PersistenceError

import store
from store import locks
from cli import audit as audit_command
from cli import report as report_command
from cli import supervisor
from cli.embedded import claimed, redis_url, socket_path, start_redis
from domain.access.service import SIGNUPS_EXPORT
from domain.consultations.consultation import Definition, consultation_id, read_definition
from domain.consultations.service import Consultations
from domain.errors import DomainError
from domain.reports.report import Report, report_id
from domain.staff.member import Role
from reports.render import spreadsheet_safe
from runtime import System
from runtime.settings import Settings
from workers import views

log = logging.getLogger("agora")


def settings(redis: bool = False, creates: bool = False) -> Settings:
    """The environment's settings; without REDIS_URL, the embedded server's socket if one is running.
    A command that uses Redis (`redis`) refuses when there is neither: it would write to whatever
    Redis answers on the default address (an operator's `agora rebuild` after stopping the server did).
    A command that does not make a deployment (`creates`) refuses when the embedded store is not
    there: run from another folder, it made an empty store and a new secret, then said nothing was in it."""
    found = Settings.from_env()
    env = {**os.environ, **store.environment(Path(found.data_dir))}
    sqlite = env.get("PERSISTENCE_MODULE") in ("store.sqlite", "eventsourcing.sqlite")
    path = env.get("SQLITE_DBNAME", "")
    if sqlite and not path:
        raise ValueError("PERSISTENCE_MODULE names SQLite but SQLITE_DBNAME is not set: name the store's file (docs/configuration.md)")
    if not creates and sqlite and path != ":memory:" and not Path(path).exists():
        raise ValueError(
            f"no event store at {path}: run agora in the deployment's folder (where `agora serve` runs), or set "
            "AGORA_DATA_DIR, or PERSISTENCE_MODULE and its settings for another store (docs/configuration.md)"
        )
    secret = store.secret_file(Path(found.data_dir))
    if not creates and not found.secret and not secret.exists():  # a new one would not be the deployment's (keyed ids, receipts)
        raise ValueError(
            f"no secret: AGORA_SECRET is not set and {secret} is not there: set AGORA_SECRET as the deployment's "
            "servers have it, or run agora in the deployment's folder (docs/configuration.md)"
        )
    if "REDIS_URL" in os.environ:
        return found
    sock = socket_path(Path(found.data_dir))  # looked for, not made: a refusal leaves nothing behind
    if sock.exists():
        return Settings.from_env(redis_url=f"unix://{sock}")
    if redis:
        raise ValueError(
            f"no Redis to use: REDIS_URL is not set, and the embedded one, which runs while `agora serve` does, "
            f"is not running ({sock} is not there); start `agora serve`, or set REDIS_URL"
        )
    return found


def definition_in(path: Path) -> Definition:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}") from None
    return read_definition(data)


def load(consultations: Consultations, path: Path, definition: Definition) -> None:
    consultation_id, created = consultations.load(definition)
    print(f"{'created' if created else 'exists '} {path.name} -> {consultation_id}")


def serve(args: argparse.Namespace) -> None:
    """Supervise the API processes, the worker (unless --api-only) and, without REDIS_URL, the embedded Redis."""
    config = Settings.from_env()
    folder = store.data_dir(config.data_dir)
    embedded = "REDIS_URL" not in os.environ
    if args.api_only and embedded:
        raise ValueError("--api-only needs REDIS_URL: the Redis that the deployment's `agora work` writes the views to")
    env = dict(os.environ)
    children = []
    with ExitStack() as stack:
        if embedded:
            stack.enter_context(claimed(folder))
            env["REDIS_URL"] = redis_url(folder)
            children.append(supervisor.Child("redis", lambda: start_redis(folder)))
        with System(config) as system:
            for path in sorted(Path(config.consultations_dir).glob("*.toml")):
                load(system.consultations, path, definition_in(path))
        sock = stack.enter_context(supervisor.listen(config))
        if not args.api_only:
            # The clusterer in a process of its own: its index grows with the responses, and the garbage
            # collector's full passes over it (up to 176 ms under load) stopped the followers beside it.
            children.append(supervisor.worker_process(env, "worker", [n for n in WORKERS if n != "clusterer"]))
            if config.cluster_responses:
                children.append(supervisor.worker_process(env, "clusterer", ["clusterer"]))
        children += supervisor.api_processes(env, args.workers, sock)
        print(f"agora: serving http://{config.host}:{config.port} with {args.workers} API processes", flush=True)
        supervisor.supervise(children, stop_timeout=supervisor.GRACE + 5)


WORKERS = [*views.VIEWS, "mailer", "checkpointer", "clusterer"]  # what `agora work` runs, by name


def work(args: argparse.Namespace) -> None:
    """Run the projection followers, the mailer, the checkpointer and the clusterer (or those named) until SIGINT or SIGTERM."""
    unknown = set(args.names) - set(WORKERS)
    if unknown:
        raise ValueError(f"no such worker: {', '.join(sorted(unknown))}; the workers are {', '.join(WORKERS)}")
    if "clusterer" in args.names and not Settings.from_env().cluster_responses:
        raise ValueError("the clusterer is off (AGORA_CLUSTER_RESPONSES=false): turn it on to run it")
    # What operators watch for: which worker holds or takes over which lock, stops on a poison event, sends mail.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = supervisor.Stopping()
    # Redis or the event store's database may be starting, or restarting, beside us: try again a
    # while, then give up in one line (a supervisor starts us again), never with a traceback.
    system, deadline = None, time.monotonic() + 20
    while True:
        try:
            system = system or System(settings(redis=True, creates=True))
            workers = system.workers()
            break
        except (redis.ConnectionError, PersistenceError) as e:
            if time.monotonic() > deadline:
                if system:
                    system.close()
                sys.exit(f"agora: the worker cannot start: {e}")
            time.sleep(0.2)
    supervisor.started()
    if args.names:
        workers.runners = [r for r in workers.runners if r.name in args.names]
    workers.start()
    stopping.wait()
    workers.close()


def status(args: argparse.Namespace) -> None:
    """Where each view and the ledger stand; exits 1 if something needs an operator (for monitoring)."""
    well = True
    with System(settings(redis=True)) as system, system.redis() as client:
        positions = views.positions(system.app, client, system.settings.redis_prefix)
        head = system.app.head()  # after the views' positions: a view never looks ahead of the log
        print(f"log head: {head}")
        stops = views.Stops(client, system.settings.redis_prefix).all()
        followed, stalled = views.followed(system.app), views.stalled(system.app)
        for name, position in positions.items():
            follower = "followed" if followed[name] else "NOT FOLLOWED (no worker holds its lock)"
            if stalled[name] > locks.STALLED:
                follower = f"STALLED (its follower has not answered for {stalled[name]:,.0f} s: a standby `agora work` takes over; without one, restart it)"
            behind = f"behind by {head - position}" if position <= head else f"AHEAD of the log by {position - head}: the log lost events, or the view is another store's (`agora rebuild {name}`)"
            print(f"view {name:<8} at {position:>10}  {behind}  {follower}")
            well = well and followed[name] and stalled[name] <= locks.STALLED and position <= head
            if name in stops:
                stop = stops[name]
                decided = "skipping it, as decided" if stop["skip"] else f"`agora rebuild {name}` after a fix, or `agora skip {name} {stop['position']}`"
                print(f"  STOPPED on event {stop['position']} after {stop['attempts']} attempts: {stop['error']}; {decided}")
                well = well and stop["skip"]
        line, verified = audit_command.status_line(system)
        print(line)
    if not (well and verified):
        sys.exit(1)


def skip(args: argparse.Namespace) -> None:
    """Let a view stopped on an event its fold fails on do without that event: an operator's decision, logged."""
    if args.view not in views.VIEWS:
        raise ValueError(f"no such view: {args.view}; the views are {', '.join(views.VIEWS)}")
    with System(settings(redis=True)) as system, system.redis() as client:
        views.Stops(client, system.settings.redis_prefix).skip(args.view, args.position)
    log.warning("operator decision: view %s does without event %d (`agora skip`)", args.view, args.position)
    print(f"view {args.view} will do without event {args.position}; a rebuild folds it again (and stops there again while the fold fails)")


def rebuild(args: argparse.Namespace) -> None:
    unknown = set(args.views) - set(views.VIEWS)
    if unknown:
        raise ValueError(f"no such view: {', '.join(sorted(unknown))}; the views are {', '.join(views.VIEWS)}")
    failed = []
    with System(settings(redis=True)) as system, system.redis() as client:
        for name in args.views or list(views.VIEWS):
            try:
                events, seconds = views.rebuild(system.app, client, system.settings.redis_prefix, name)
            except ValueError as e:  # its fold fails on an event: the others are rebuilt all the same (an operator's)
                print(f"agora: {e}", file=sys.stderr)
                failed.append(name)
                continue
            print(f"rebuilt {name}: up to position {events} in {seconds:.2f}s ({events / max(seconds, 1e-9):,.0f}/s)")
    if failed:
        sys.exit(f"agora: not rebuilt: {', '.join(failed)}")


def closing_time(at: str) -> datetime | None:
    if at == "never":
        return None
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"not a time: {at!r}; give an ISO 8601 time with its offset, e.g. 2026-12-31T23:59:00Z, or 'never'") from None


def consultation(args: argparse.Namespace) -> None:
    definition = definition_in(Path(args.path)) if args.action == "load" else None  # a bad file makes no store
    with System(settings(creates=definition is not None)) as system:
        consultations = system.consultations
        if definition is not None:
            load(consultations, Path(args.path), definition)
            return
        position = {
            "open": lambda: consultations.open(args.slug),
            "close": lambda: consultations.close(args.slug),
            "closes": lambda: consultations.move_closing_time(args.slug, closing_time(args.at)),
            "draft-url": lambda: consultations.set_draft_url(args.slug, args.url),
        }[args.action]()
        print(f"recorded at position {position}" if position else "no change")
        if args.action not in ("open", "closes") or not position:
            return
        report = system.app.find(report_id(consultation_id(args.slug)), Report)
        if report is not None and report.final and consultations.get(args.slug).takes_responses(datetime.now(UTC)):
            print(
                f"agora: note: the final report (version {report.published}) is published; responses taken from now on are not "
                "in it: publish a correction once they are reviewed (`agora report` and docs/api.md, The published report)",
                file=sys.stderr,
            )


def staff(args: argparse.Namespace) -> None:
    """Enrol a staff member from the command line (how the first admin is bootstrapped), set a
    locked-out member's password, erase a former one, reseal members enrolled in clear."""
    if args.action == "erase":
        with System(settings()) as system:
            member = system.staff.erase(UUID(args.id), by=None)
        print(f"erased {member.id}: the keys of their name, email and password hash are destroyed, so the log and its backups no longer read them")
        if member.enrolled_in_clear:
            print("note: they were enrolled before staff data was sealed; that enrolment holds them in clear in the log and its backups")
        return
    if args.action == "reseal":
        with System(settings()) as system:
            done = system.staff.reseal()
        print(f"resealed {len(done)} members enrolled in clear; their clear enrolments stay in the log (see docs/privacy.md)")
        return
    password = os.environ.get("AGORA_STAFF_PASSWORD") or getpass.getpass(f"Password for {args.email}: ")
    if args.action == "passwd":
        with System(settings()) as system:
            member = system.staff.set_password(args.email, password)
        print(f"new password set for {member.id}; their earlier tokens no longer work")
        return
    with System(settings(creates=True)) as system:  # the first admin may come before the first `agora serve`
        member_id = system.staff.enrol(args.email, args.name, password, [Role(r) for r in args.role], by=None)
    print(f"enrolled {args.email} as {', '.join(args.role)}: {member_id}")


def keys(args: argparse.Namespace) -> None:
    with System(settings()) as system:
        held, named = system.reshred()
        print(f"the log's shredding, erasure and password-change events name {named} keys: {held} still held, destroyed now")


def signups(args: argparse.Namespace) -> None:
    with System(settings()) as system:
        signups = system.signups
        if args.action == "export":
            slug = args.consultation or only_consultation(system.consultations)
            rows = [[spreadsheet_safe(v) for v in (c.name, c.email, s.session_id)] for s, c in signups.attendees(slug, args.session)]
            system.access.record(None, SIGNUPS_EXPORT, f"{slug}/{args.session}")  # names and emails: on record before they leave
            if args.output:  # the list names people: the file is readable by its owner only
                with os.fdopen(os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", newline="") as f:
                    csv.writer(f).writerows([("name", "email", "session"), *rows])
            else:
                csv.writer(sys.stdout).writerows([("name", "email", "session"), *rows])
            print(f"{len(rows)} confirmed attendees of {args.session}", file=sys.stderr)
            return
        try:
            signup_id: UUID | None = UUID(args.who)
        except ValueError:
            signup_id = signups.find(args.consultation or only_consultation(system.consultations), args.who)
        if signup_id is None or not signups.exists(signup_id):
            raise ValueError("no such signup (by that email, it may be erased already: erase again by its id, or run `agora keys reshred`)")
        print(f"erasing signup {signup_id}")
        try:
            signups.erase(signup_id, token=None)
        finally:
            system.forget_mail(signup_id)
        print("erased: its key is destroyed, its outbox copies deleted")


def report(args: argparse.Namespace) -> None:
    with System(settings()) as system:
        report_command.run(args, system)


def only_consultation(consultations: Consultations) -> str:
    slugs = consultations.slugs()
    if len(slugs) != 1:
        raise ValueError(f"name the consultation with --consultation: the store holds {', '.join(slugs) or 'none'}")
    return slugs[0]


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agora", description="Agora: event-sourced public consultations.")
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    v = sub.add_parser("serve", help="serve the API with its worker (and an embedded Redis unless REDIS_URL is set), supervised")
    v.add_argument("--workers", type=positive, default=os.cpu_count() or 1, metavar="N", help="API processes (default: the number of cores)")
    v.add_argument("--api-only", action="store_true", help="no worker, no embedded Redis: for deployments running `agora work` apart")
    v.set_defaults(run=serve)
    w = sub.add_parser("work", help="run the projection followers, the mailer, the checkpointer and the clusterer in this process")
    w.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(WORKERS)} (default: all)")
    w.set_defaults(run=work)
    sub.add_parser("status", help="the views' positions against the log's head").set_defaults(run=status)
    r = sub.add_parser("rebuild", help="replay the log into fresh views, then switch readers to them")
    r.add_argument("views", nargs="*", metavar="VIEW", help=f"any of: {', '.join(views.VIEWS)} (default: all)")
    r.set_defaults(run=rebuild)
    sk = sub.add_parser("skip", help="let a view stopped on an event its fold fails on (see status) do without it")
    sk.add_argument("view", metavar="VIEW", help=f"any of: {', '.join(views.VIEWS)}")
    sk.add_argument("position", type=positive, metavar="POSITION", help="the event it stopped on, as `agora status` shows it")
    sk.set_defaults(run=skip)

    c = sub.add_parser("consultation", help="create and operate consultations").add_subparsers(required=True, dest="action", metavar="ACTION")
    c.add_parser("load", help="create a consultation from a file, unless it exists").add_argument("path")
    for action, text in (("open", "take responses"), ("close", "stop taking responses")):
        c.add_parser(action, help=text).add_argument("slug")
    closes = c.add_parser("closes", help="move the closing time")
    closes.add_argument("slug")
    closes.add_argument("at", help="an ISO 8601 time with offset, e.g. 2026-12-31T23:59:00Z, or 'never'")
    draft = c.add_parser("draft-url", help="set the link to the draft")
    draft.add_argument("slug")
    draft.add_argument("url")
    for parser_ in c.choices.values():
        parser_.set_defaults(run=consultation)

    s = sub.add_parser("staff", help="staff accounts").add_subparsers(required=True, dest="action", metavar="ACTION")
    add = s.add_parser("add", help="enrol a staff member (password from AGORA_STAFF_PASSWORD, or asked for)")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", action="append", choices=[r.value for r in Role], required=True, help="repeat for several")
    add.set_defaults(run=staff)
    s.add_parser("erase", help="erase a deactivated member: destroy the keys of their name, email and password hash").add_argument("id")
    s.add_parser("reseal", help="seal the data of members enrolled before staff data was sealed")
    s.add_parser("passwd", help="set a member's password, e.g. a locked-out last admin's (from AGORA_STAFF_PASSWORD, or asked for)").add_argument("email")
    for parser_ in s.choices.values():
        parser_.set_defaults(run=staff)

    k = sub.add_parser("keys", help="the data keys of sealed free text").add_subparsers(required=True, dest="action", metavar="ACTION")
    k.add_parser("reshred", help="destroy again every key the log says was destroyed (after a restore)").set_defaults(run=keys)

    g = sub.add_parser("signups", help="working-session signups").add_subparsers(required=True, dest="action", metavar="ACTION")
    export = g.add_parser("export", help="write the confirmed attendees of a session as CSV (name, email, session)")
    export.add_argument("--session", required=True)
    export.add_argument("--output", "-o", help="a file (made readable by you only); default: standard output")
    erase = g.add_parser("erase", help="erase a signup: destroy its key, so its name and email are gone for good")
    erase.add_argument("who", metavar="EMAIL_OR_ID", help="the email address signed up, or the signup's id")
    for parser_ in g.choices.values():
        parser_.add_argument("--consultation", metavar="SLUG", help="default: the only consultation in the store")
        parser_.set_defaults(run=signups)
    for parser_ in report_command.add_parser(sub).choices.values():
        parser_.set_defaults(run=report)
    audit_command.register(sub, settings)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.umask(0o077)  # what we write (the store, its keys, the outbox, exports) is ours alone to read
    try:
        args.run(args)
    except DomainError as e:
        sys.exit(f"agora: {e.detail}")
    except ValueError as e:
        sys.exit(f"agora: {e}")
    except redis.RedisError as e:  # an outage an operator may be looking into: said in a line, not a traceback
        sys.exit(f"agora: Redis does not answer ({type(e).__name__}: {e}); is it running, and is REDIS_URL right?")
    except PersistenceError as e:  # likewise the event store
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.exit(f"agora: the event store does not answer ({first}); is it running, and are PERSISTENCE_MODULE and POSTGRES_* right?")
    except EOFError:  # a prompt (a password) with no terminal to answer it
        sys.exit("agora: a prompt found no input; run it in a terminal, or give it by its variable (AGORA_STAFF_PASSWORD for a password)")
    except BrokenPipeError:  # `agora status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor a second error as Python flushes at exit
        sys.exit(1)
