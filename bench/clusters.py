"""Benchmark: how well and how fast the clusterer groups campaign responses, against a corpus whose truth is known.

Run from the project folder:
    .venv/bin/python bench/clusters.py [--responses 10000] [--threshold 0.8] [--template-sentences 6 14]
    .venv/bin/python bench/clusters.py --latency [--responses 10000] [--rate 100] [--seconds 30]
    .venv/bin/python bench/clusters.py --rebuild 1000000

The corpus: organic responses (sentences drawn from a grammar of what people say about a code of
conduct, so that they share stock phrases as real ones do, and some a few words long), campaigns
built from templates (from 0.05 % to 15 % of the corpus each) whose members are exact copies or
personalised: a greeting and a signature with a name, a sentence of their own added, one removed,
sentences reordered, typos, in combination; and organic responses submitted again word for word.
The hard cases for precision: two campaigns whose templates are rewrites of a third and of a
quarter of an earlier one's (each a group of its own), organic responses that quote up to a third
of a template amid more of their own, and organic responses on one narrow topic with stock
phrases. Each response knows its true group: its campaign, its original, or itself.

By default it submits them to the seed consultation on a fresh SQLite store (as the API does:
checked, free text sealed, in batches), runs the clusterer over the log and compares the clusters it
recorded with the truth pairwise: precision is the share of pairs put together that belong together,
recall the share of pairs that belong together that were put together (target both >= 0.95), with
the recall of each kind of personalisation and, per hard case, how many were put with another's
response. It prints the clusterer's catch-up time per response and, apart, the latency of
fingerprinting and matching one text against the index (p50, p99).

--latency: with `--responses` in the log and clustered, another process submits one response at a
time at `--rate` a second while the clusterer runs; p99 of (assignment committed - response
committed), target 200 ms.

--rebuild N: a store of N responses with their assignments, written in bulk; then, in a fresh
process, the clusterer's start (the index rebuilt from the log: every text unsealed and
fingerprinted), timed, with its peak memory; targets for 1,000,000: 10 minutes, 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain.campaigns.cluster import Assignment, Likeness, first_cluster_id  # noqa: E402
from domain.campaigns.similarity import Index, fingerprint  # noqa: E402
from domain.consultations.consultation import read_definition  # noqa: E402
from domain.consultations.response import Response  # noqa: E402
from domain.consultations.service import Submission  # noqa: E402
from runtime import System  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from workers.clusterer import Clusterer  # noqa: E402

SEED = ROOT / "consultations" / "code-of-conduct-2026.toml"
TARGET = 0.95
LATENCY_TARGET = 200  # ms, p99
REBUILD_SECONDS, REBUILD_BYTES = 600, 2 << 30  # over 1,000,000 responses
BATCH = 500
GENERATE_BATCH = 2000
TEMPLATE_SENTENCES = (6, 14)  # about 60 to 150 words: a form letter of one or two paragraphs
CAMPAIGN_SHARES = [0.15, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005]  # of the corpus, per campaign

OPENERS = ["", "", "", "I think", "In my view,", "Honestly,", "As a long-time member,", "Speaking as a chapter lead,", "Overall", "To be frank,", "From what I have seen,"]
SUBJECTS = [
    "the draft", "the new code", "section four", "the reporting process", "the appeals panel", "the part on AI use",
    "the consent section", "the list of examples", "the enforcement procedure", "the scope of online spaces",
    "the definition of harassment", "the language used", "the translation", "the timeline", "the committee's role",
    "the guidance for moderators", "the rules for events", "the anonymous reporting option", "the privacy notice", "the FAQ",
]
VERBS = [
    "is much clearer than", "reads better than", "is more confusing than", "goes further than", "is weaker than",
    "covers more ground than", "is harder to follow than", "improves on", "repeats", "contradicts", "leaves out what was in",
]
OBJECTS = [
    "the old version", "the current rules", "what other communities do", "the 2019 text", "the mailing list guidelines",
    "the regional codes", "the IETF's guidance", "what we discussed last year", "the board's earlier draft",
]
CLAIMS = [
    "should say who decides and how quickly", "needs concrete examples", "must protect people who report",
    "ought to be translated into more languages", "could be half as long", "should apply to private messages too",
    "needs a clear appeal route", "should not depend on a single volunteer", "must respect local law",
    "deserves a separate consultation", "should name a contact address", "should be reviewed every two years",
    "must not be used to silence criticism", "needs a plain-language summary", "should cover hybrid events",
]
REASONS = [
    "because people do not know where to turn", "since volunteers change every year", "as the current text is vague",
    "because newcomers read it first", "given how many chapters there are", "because the stakes are high for those reporting",
    "as several incidents last year showed", "because trust depends on it", "since most discussion now happens online", "",
]
SHORT = ["I agree.", "No comment.", "Fine by me", "Looks good to me.", "Nothing to add.", "Please keep it short.", "Yes", "Agree with the draft overall."]
NAMES = [
    "Ana Lopez", "Bo Chen", "Chidi Okafor", "Dana Levi", "Emre Yilmaz", "Fatima Haddad", "Gita Rao", "Hiro Sato", "Ines Costa",
    "Jonas Berg", "Kofi Mensah", "Lena Novak", "Mateo Rossi", "Nadia Karim", "Olga Ivanova", "Pedro Alves", "Quynh Tran",
    "Rahul Mehta", "Sara Nilsson", "Tomas Horvat", "Uma Iyer", "Viktor Petrov", "Wen Li", "Yara Saleh", "Zoe Martin",
]
GREETINGS = ["Dear committee,", "Hello,", "To whom it may concern:", "Dear colleagues,", "Hi all,"]
SIGNATURES = ["Regards, {}", "Best wishes, {}", "Thank you. {}", "Sincerely, {}", "{}, member since 2015"]
VARIANTS = ("copy", "name", "added", "removed", "reordered", "typos")
REWRITES = {1: 3, 4: 4}  # campaign -> every how many sentences of the previous campaign's template its own rewrites
QUOTING = 0.05  # of organic responses: quote part of a template, say more of their own
NARROW = 0.15  # of organic responses: on the appeals panel alone, with stock phrases
STOCK = [
    "Thank you for the opportunity to comment on the draft code of conduct.", "I have been a member of the Internet Society for many years.",
    "I support the draft overall but have one concern.", "Please take these comments into account.",
    "I write in a personal capacity and not for my chapter.", "Thank you to the committee for all its hard work on this draft.",
]


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        text = f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    else:
        text = f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(CLAIMS)} {rng.choice(REASONS)}"
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + "."


def organic(rng: random.Random) -> str:
    if rng.random() < 0.08:
        return rng.choice(SHORT)
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 8)))


def typo(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) - 1)
    op = rng.randrange(3)
    if op == 0:
        return text[:i] + text[i + 1 :]  # a letter dropped
    if op == 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]  # two swapped
    return text[:i] + rng.choice("aeiourstn") + text[i:]  # one added


def member(rng: random.Random, template: list[str]) -> tuple[str, set[str]]:
    """One campaign response from its template's sentences, and the kinds of personalisation it got."""
    if rng.random() < 0.3:
        return " ".join(template), {"copy"}
    kinds: set[str] = set()
    sentences = list(template)
    if rng.random() < 0.3:
        sentences.insert(rng.randrange(len(sentences) + 1), sentence(rng))
        kinds.add("added")
    if rng.random() < 0.2 and len(sentences) > 4:
        del sentences[rng.randrange(len(sentences))]
        kinds.add("removed")
    if rng.random() < 0.2:
        i = rng.randrange(len(sentences) - 1)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        kinds.add("reordered")
    if rng.random() < 0.6:
        name = rng.choice(NAMES)
        sentences = [rng.choice(GREETINGS), *sentences, rng.choice(SIGNATURES).format(name)]
        kinds.add("name")
    text = " ".join(sentences)
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            text = typo(rng, text)
        kinds.add("typos")
    return text, kinds or {"copy"}


def narrow(rng: random.Random) -> str:
    """An organic response on the appeals panel, as many write it: stock phrases around sentences of their own."""
    own = [f"{rng.choice(OPENERS)} the appeals panel {rng.choice(CLAIMS)} {rng.choice(REASONS)}" for _ in range(rng.randint(2, 5))]
    own = [" ".join(s.split()) for s in own]
    text = [s[0].upper() + s[1:] + "." for s in own]
    stock = rng.sample(STOCK, rng.randint(1, 3))
    return " ".join([stock[0], *text, *stock[1:]])


def quoting(rng: random.Random, template: list[str]) -> str:
    """An organic response that quotes up to a third of a template and says more of its own."""
    start, length = rng.randrange(len(template)), rng.randint(1, max(len(template) // 3, 1))
    own = [sentence(rng) for _ in range(length + rng.randint(1, 4))]
    at = rng.randint(0, len(own))
    return " ".join(own[:at] + template[start : start + length] + own[at:])


def corpus(size: int, seed: int, template_sentences: tuple[int, int] = TEMPLATE_SENTENCES) -> list[tuple[str, str, set[str]]]:
    """`size` texts in submission order, each with its true group and how it was made."""
    rng = random.Random(seed)
    made: list[tuple[str, str, set[str]]] = []
    templates: list[list[str]] = []
    for c, share in enumerate(CAMPAIGN_SHARES):
        if c in REWRITES:  # another organisation's campaign, its template a rewrite of part of an earlier one's: a group of its own
            every = REWRITES[c]
            templates.append([sentence(rng) if i % every == 0 else s for i, s in enumerate(templates[c - 1])])
        else:
            templates.append([sentence(rng) for _ in range(rng.randint(*template_sentences))])
        made += [(text, f"campaign-{c}", kinds) for text, kinds in (member(rng, templates[c]) for _ in range(max(int(size * share), 2)))]
    while len(made) < size:
        draw = rng.random()
        if draw < QUOTING:
            text, kind = quoting(rng, rng.choice(templates)), "quoting"
        elif draw < QUOTING + NARROW:
            text, kind = narrow(rng), "narrow"
        else:
            text, kind = organic(rng), "organic"
        group = f"organic-{len(made)}"
        made.append((text, group, {kind}))
        if rng.random() < 0.03 and len(made) < size and text not in SHORT:  # the same person, or a friend, sends it again
            made.append((text, group, {"resent"}))
    rng.shuffle(made)  # campaigns arrive spread over the consultation, and their first member is any variant
    return made[:size]


def pairs(counts: Counter[object]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def score(truth: list[str], predicted: list[object]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering (None: in no cluster, a group of one) against the truth."""
    predicted = [p if p is not None else ("alone", i) for i, p in enumerate(predicted)]
    together = pairs(Counter(zip(truth, predicted, strict=True)))
    return together / max(pairs(Counter(predicted)), 1), together / max(pairs(Counter(truth)), 1)


def latency(texts: list[str], threshold: float) -> tuple[float, float]:
    """p50 and p99 of fingerprinting a text and matching it against an index of those before it, in ms."""
    index, times = Index(threshold), []
    for i, text in enumerate(texts):
        started = time.perf_counter()
        print_ = fingerprint(text)
        if print_ is not None:
            index.match(print_)
            index.add(i, print_)
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[98]


def submit(definition: object, system: System, texts: list[str]) -> list[object]:
    """The texts submitted to the seed consultation as the API does (checked, free text sealed), in batches; their ids."""
    ids = []
    for first in range(0, len(texts), BATCH):
        receipts = system.consultations.submit_batch(
            [Submission(definition.slug, {"familiarity": "read", "works_well": t}) for t in texts[first : first + BATCH]]  # type: ignore[attr-defined]
        )
        ids += [r.id for r in receipts]  # type: ignore[union-attr]
    return ids


def quality(args: argparse.Namespace) -> bool:
    made = corpus(args.responses, args.seed, tuple(args.template_sentences))
    texts = [t for t, _, _ in made]
    with tempfile.TemporaryDirectory(prefix="agora-cluster-bench-") as folder:
        with System(Settings(data_dir=folder, secret="b" * 48, cluster_threshold=args.threshold), sqlite(folder)) as system:
            definition = read_definition(SEED.read_bytes())
            system.consultations.load(definition)
            started = time.perf_counter()
            ids = submit(definition, system, texts)
            submitted = time.perf_counter() - started
            clusterer = system.clusterer()
            started = time.perf_counter()
            clusterer.catch_up()
            assigned = time.perf_counter() - started
            book = system.campaigns.book()
            predicted = [book.cluster_of(i) for i in ids]
    precision, recall = score([g for _, g, _ in made], predicted)
    p50, p99 = latency(texts, args.threshold)
    campaign = sum(g.startswith("campaign") for _, g, _ in made)
    clusters = Counter(p for p in predicted if p is not None)
    print(
        f"{len(texts):,} responses ({campaign:,} in {len(CAMPAIGN_SHARES)} campaigns), threshold {args.threshold}: "
        f"precision {precision:.4f}, recall {recall:.4f} ({'ok' if min(precision, recall) >= TARGET else 'BELOW'} the {TARGET} target); "
        f"{sum(n > 1 for n in clusters.values()):,} clusters of two or more"
    )
    print(
        f"submitted in {submitted:.1f} s; the clusterer assigned them all in {assigned:.1f} s = {assigned / len(texts) * 1000:.2f} ms per response "
        f"(catching up over the log, in batches); fingerprint and match alone: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    # Recall by personalisation: the share of a campaign's members placed in the cluster most of it is in.
    main_cluster = {g: Counter(p for (_, gg, _), p in zip(made, predicted, strict=True) if gg == g and p).most_common(1) for g, _ in Counter(g for _, g, _ in made).items() if g.startswith("campaign")}
    for variant in VARIANTS:
        members = [(g, p) for (_, g, kinds), p in zip(made, predicted, strict=True) if g.startswith("campaign") and variant in kinds]
        placed = sum(1 for g, p in members if main_cluster[g] and p == main_cluster[g][0][0])
        print(f"  {variant:>9}: {placed:,} of {len(members):,} members in their campaign's main cluster ({placed / max(len(members), 1):.1%})")
    # Precision by hard case: responses of one person put in a cluster with someone else's.
    groups: dict[object, set[str]] = {}
    for (_, g, _), p in zip(made, predicted, strict=True):
        groups.setdefault(p, set()).add(g)
    for kind in ("organic", "narrow", "quoting"):
        members = [p for (_, _, kinds), p in zip(made, predicted, strict=True) if kind in kinds]
        joined = sum(1 for p in members if p is not None and len(groups[p]) > 1)
        print(f"  {kind:>9}: {joined:,} of {len(members):,} in a cluster with another's response")
    return min(precision, recall) >= TARGET


def sqlite(folder: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": f"{folder}/agora.sqlite"}


def submitter(folder: str, texts: list[str], rate: float, out: str) -> None:
    """Submit one response at a time, at `rate` a second, from a process of its own (as an API process would);
    write each response's id and the time its submission was recorded."""
    with System(Settings(data_dir=folder, secret="b" * 48), sqlite(folder)) as system:
        definition = read_definition(SEED.read_bytes())
        started, lines = time.perf_counter(), []
        for i, text in enumerate(texts):
            time.sleep(max(started + i / rate - time.perf_counter(), 0))
            [receipt] = system.consultations.submit_batch([Submission(definition.slug, {"familiarity": "read", "works_well": text})])
            lines.append(f"{receipt.id} {time.time()}")  # type: ignore[union-attr]
    Path(out).write_text("\n".join(lines))


class Timed(Clusterer):
    """The clusterer, noting when each assignment was recorded."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.recorded: dict[object, float] = {}

    def _record(self) -> None:
        due = list(self.pending)
        super()._record()
        now = time.time()
        self.recorded.update(dict.fromkeys(due, now))


def behind(args: argparse.Namespace) -> bool:
    """p99 of assignment recorded time - response recorded time, while responses arrive at a steady rate."""
    made = corpus(args.responses + int(args.rate * args.seconds), args.seed, tuple(args.template_sentences))
    texts = [t for t, _, _ in made]
    with tempfile.TemporaryDirectory(prefix="agora-cluster-bench-") as folder:
        with System(Settings(data_dir=folder, secret="b" * 48, cluster_threshold=args.threshold), sqlite(folder)) as system:
            definition = read_definition(SEED.read_bytes())
            system.consultations.load(definition)
            submit(definition, system, texts[: args.responses])  # already in the log and the index when the load starts
            clusterer = Timed(system.app, system.texts, args.threshold)
            stop = threading.Event()
            worker = threading.Thread(target=clusterer.run, args=(stop,))
            worker.start()
            while len(clusterer.recorded) < args.responses:
                time.sleep(0.1)
            out = f"{folder}/submitted.txt"
            load = multiprocessing.get_context("spawn").Process(target=submitter, args=(folder, texts[args.responses :], args.rate, out))
            load.start()
            load.join()
            submitted = {UUID(i): float(t) for i, t in (line.split() for line in Path(out).read_text().splitlines())}
            deadline = time.time() + 30
            while not submitted.keys() <= clusterer.recorded.keys() and time.time() < deadline:
                time.sleep(0.1)
            stop.set()
            worker.join()
    late = [(clusterer.recorded[i] - t) * 1000 for i, t in submitted.items() if i in clusterer.recorded]
    cuts = statistics.quantiles(late, n=100)
    ok = len(late) == len(submitted) and cuts[98] <= LATENCY_TARGET
    print(
        f"{len(submitted):,} responses submitted one at a time at {args.rate:g}/s for {args.seconds:g} s from another process, "
        f"over {args.responses:,} already clustered: assignment recorded after the response by p50 {cuts[49]:.0f} ms, "
        f"p99 {cuts[98]:.0f} ms, max {max(late):.0f} ms ({'ok' if ok else 'OVER'} the p99 target of {LATENCY_TARGET} ms); "
        f"{len(submitted) - len(late)} not assigned within 30 s of the load's end"
    )
    return ok


def generate(folder: str, size: int, seed: int) -> None:
    """A store of `size` responses with their assignments (from the corpus's truth), saved in large batches."""
    made = corpus(size, seed)
    started = time.perf_counter()
    with System(Settings(data_dir=folder, secret="b" * 48), sqlite(folder)) as system:
        definition = read_definition(SEED.read_bytes())
        system.consultations.load(definition)
        consultation = system.consultations.get(definition.slug)
        founders: dict[str, UUID] = {}
        for first in range(0, size, GENERATE_BATCH):
            batch = made[first : first + GENERATE_BATCH]
            sealed = system.texts.seal([("works_well", t) for t, _, _ in batch])
            responses, assignments = [], []
            for (text, group, _), texts in zip(batch, sealed, strict=True):
                response = Response(consultation.id, consultation.revision, {"familiarity": "read"}, {"works_well": texts}, uuid4().hex)
                if text in SHORT:
                    cluster, kind = None, Likeness.UNCLUSTERED
                elif group in founders:
                    cluster, kind = first_cluster_id(founders[group]), Likeness.NEAR
                else:
                    founders[group] = response.id
                    cluster, kind = first_cluster_id(response.id), Likeness.UNIQUE
                responses.append(response)
                assignments.append(Assignment(response_id=response.id, consultation_id=consultation.id, cluster_id=cluster, kind=kind, similarity=0.0))
            system.app.save(*responses, *assignments)
            if (first // GENERATE_BATCH) % 50 == 49:
                print(f"  {first + len(batch):,} responses in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def rebuild_child(folder: str, threshold: float) -> None:
    """Rebuild the clusterer's index from the log, as on its start; print the time and this process's peak memory."""
    with System(Settings(data_dir=folder, secret="b" * 48, cluster_threshold=threshold), sqlite(folder)) as system:
        clusterer = system.clusterer()
        started = time.perf_counter()
        clusterer.catch_up()
        seconds = time.perf_counter() - started
        indexed = sum(len(i) for i in clusterer.indexes.values())
        texts = sum(len(i.texts) for i in clusterer.indexes.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "indexed": indexed, "texts": texts, "folded": len(clusterer.book.members)}))


def rebuild(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="agora-cluster-rebuild-") as folder:
        started = time.perf_counter()
        generate(folder, args.rebuild, args.seed)
        print(f"  store of {args.rebuild:,} responses with their assignments made in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        child = subprocess.run([sys.executable, __file__, "--rebuild-child", folder, "--threshold", str(args.threshold)], check=True, capture_output=True, text=True)
    r = json.loads(child.stdout)
    fast, small = r["seconds"] <= REBUILD_SECONDS, r["peak"] <= REBUILD_BYTES
    print(
        f"rebuild from the log over {r['folded']:,} assigned responses ({r['indexed']:,} indexed, {r['texts']:,} distinct texts): "
        f"{r['seconds']:.0f} s ({'ok' if fast else 'OVER'} the {REBUILD_SECONDS // 60} minute target), "
        f"peak memory {r['peak'] / 2**20:,.0f} MiB ({'ok' if small else 'OVER'} the 2 GiB target)"
    )
    return fast and small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=10_000, help="the corpus; with --latency, those in the log before the load starts")
    parser.add_argument("--threshold", type=float, default=Settings().cluster_threshold)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--template-sentences", type=int, nargs=2, default=TEMPLATE_SENTENCES, metavar=("MIN", "MAX"), help="a template's length, in sentences of about ten words")
    parser.add_argument("--latency", action="store_true", help="assignment latency behind the log while responses arrive")
    parser.add_argument("--rate", type=float, default=100, help="with --latency: responses a second")
    parser.add_argument("--seconds", type=float, default=30, help="with --latency: how long the load lasts")
    parser.add_argument("--rebuild", type=int, metavar="N", help="rebuild the index over a store of N responses (1000000 for the target)")
    parser.add_argument("--rebuild-child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild_child:
        rebuild_child(args.rebuild_child, args.threshold)
        return
    ok = behind(args) if args.latency else rebuild(args) if args.rebuild else quality(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
