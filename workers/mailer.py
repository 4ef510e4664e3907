"""The mailer: emails the people who sign up for working sessions.

It follows the log with a tracking position of its own (kept in the event store's database)
and turns signup events into messages: a link to confirm, the session's details with a
calendar invitation, a cancellation. Reminders are driven by time: a day before a session,
each confirmed attendee gets one; between events the mailer sleeps until the next is due.

It also finishes the erasures asked for by people holding a seat: it sends the calendar
cancellation, then erases. Mail that cannot go out holds an erasure back ERASE_WITHIN at most.

Every message it sends is recorded as a `Signup.MessageSent` event, after sending: a restart
sends again only what was not recorded (at least once), under the same Message-ID, so mail
programs show a duplicate once. Only one mailer of a deployment sends at a time (a lock in the
event store's database); another, say in `agora work` beside `agora serve`, stands by.

It writes no names or email addresses to its log, only signup ids and Message-IDs.
"""

from __future__ import annotations

import logging
import string
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from importlib import resources
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from domain.signups.service import Signups
from domain.consultations.consultation import Consultation, Session
from domain.signups.signup import ERASE_WITHIN, REMIND_BEFORE, Contact, Purpose, Signup, State, reminded, when
import store
from store import locks
from workers.mail import MailError, Transport, calendar, message
from workers.reads import reads

log = logging.getLogger(__name__)

BATCH = 500
IDLE_POLL = 0.5  # seconds between looks at the log when nothing rings
RETRY = 30.0  # seconds before trying again after a failed send
STANDBY = 5.0  # seconds between a standby mailer's attempts to take over
RECORD_EVERY = 5.0  # seconds between recordings of its position past events it ignores

_TOPICS = {
    get_topic(cls): cls
    for cls in (
        Consultation.Created, Signup.Requested, Signup.Rerequested, Signup.DetailsRequested,
        Signup.Confirmed, Signup.Cancelled, Signup.ErasureRequested, Signup.Erased,
    )
}
ERASURES = [get_topic(Signup.ErasureRequested)]


def template(name: str) -> tuple[string.Template, string.Template]:
    """A message template: its first line is the subject, the rest (after a blank line) the body."""
    subject, _, body = resources.files("workers").joinpath(f"templates/{name}.txt").read_text().partition("\n")
    return string.Template(subject), string.Template(body)


class Mailer:
    name = "mailer"

    def __init__(self, signups: Signups, transport: Transport, sender: str, public_url: str) -> None:
        self.signups = signups
        self.app = signups.app
        self.bell: store.Doorbell | None = None  # while sending
        self.transport = transport
        self.sender = sender
        self.public_url = public_url.rstrip("/")
        self.domain = sender.rpartition("@")[2].strip(" >") or "agora.invalid"
        self.tracking = self.app.factory.tracking_recorder()
        self.templates = {name: template(name) for name in ("confirm", "confirmed", "reminder", "cancelled", "erased")}
        self.position = 0
        self.recorded_at = 0.0  # when its position was last recorded (time.monotonic)
        self.sessions: dict[tuple[UUID, str], tuple[Consultation, Session]] = {}
        self._resume()
        self.retry_at: datetime | None = None  # set after a failed send

    def step(self, now: datetime, since: float | None = None) -> int:
        """Send what the log's new events and the clock call for; returns how many events it read.
        The log is read as the followers read it (`workers.reads`), from a read begun at `since` or later."""
        if self.retry_at and now < self.retry_at:
            return 0
        self.retry_at = None
        try:
            read = self._follow(since)
            self._remind(now)
        except MailError as e:
            log.warning("mailer: %s; trying again in %.0fs", e, RETRY)
            self.retry_at = now + timedelta(seconds=RETRY)
            self._erase_overdue(now)
            return 0
        return read

    def next_due(self, now: datetime) -> datetime | None:
        """When to step next for reminders or a retry (now, if due), or None if nothing is to come."""
        if self.retry_at and now < self.retry_at:
            return self.retry_at  # nothing is sent before then
        return min((max(s.starts_at - REMIND_BEFORE, now) for _, s in self.sessions.values() if now < s.starts_at), default=None)

    def run(self, stop: threading.Event, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Send until `stop` is set. One mailer of a deployment sends; any other stands by to take over."""
        locks.one_at_a_time(self.app.recorder, "mailer", stop, lambda held: self._serve(stop, clock, held), STANDBY)

    def _serve(self, stop: threading.Event, clock: Callable[[], datetime], held: Callable[[], bool]) -> None:
        """Send, woken by the log's doorbell or when reminders fall due, while `held` and until `stop`."""
        self._resume()  # where the last mailer left off
        self.bell = bell = store.Doorbell(self.app.recorder)
        try:
            while not stop.is_set():
                if not held():
                    log.warning("mailer: lost its lock; standing by")
                    return
                since = bell.clear()
                try:
                    if self.step(clock(), since):
                        continue
                except Exception as e:  # noqa: BLE001 - the mailer outlives store outages; it reports and retries
                    log.warning("mailer: %s; retrying", type(e).__name__)
                    stop.wait(1.0)
                    continue
                due = self.next_due(clock())
                wait = IDLE_POLL if due is None else min(IDLE_POLL, max((due - clock()).total_seconds(), 0.0))
                bell.wait(wait)
        finally:
            bell.close()
            self.bell = None

    def _resume(self) -> None:
        """Take up the log's tracking position and the reminder schedule as they are now."""
        self.position = self.tracking.max_tracking_id(self.app.name) or 0
        # The schedule: every session of every consultation, until its reminders are out.
        self.sessions = {}
        for created in self.app.select_events(Consultation.Created):
            self._schedule(self.signups.consultations.get(created.definition.slug))

    def _follow(self, since: float | None) -> int:
        notifications, batch = reads(self.app).after(self.position, BATCH, since)
        relevant = [n for n in notifications if n.topic in _TOPICS]
        for n in relevant:
            self._on(batch.event(n))
        if notifications:
            # A crash before this re-reads the batch; what was sent is recorded, so it is not sent again.
            # Past events it ignores only, the position is recorded now and then: re-reading those costs
            # nothing, and a write per wake-up would contend with submissions for the store's write lock.
            self.position = notifications[-1].id
            if relevant or time.monotonic() - self.recorded_at > RECORD_EVERY:
                self.tracking.insert_tracking(Tracking(self.app.name, self.position))
                self.recorded_at = time.monotonic()
        return len(notifications)

    def _on(self, e: Any) -> None:
        if isinstance(e, Consultation.Created):
            self._schedule(self.signups.consultations.get(e.definition.slug))
            return
        if isinstance(e, Signup.Erased):
            self.transport.forget(str(e.originator_id))
            return
        signup = self.signups.get(e.originator_id)
        if isinstance(e, Signup.Requested | Signup.Rerequested):
            # Only the latest request's link works, so only that one is worth sending.
            if signup.state is State.PENDING and signup.request == e.request:
                self._send(signup, "confirm", f"confirm.{e.request}")
        elif isinstance(e, Signup.Confirmed | Signup.DetailsRequested):
            if signup.state is State.CONFIRMED:
                self._send(signup, "confirmed", f"details.{e.originator_version}", invite=e.originator_version, at=e.timestamp)
        elif isinstance(e, Signup.Cancelled):
            self._send(signup, "cancelled", f"cancelled.{e.originator_version}", invite=e.originator_version, cancel=e.freed)
        elif isinstance(e, Signup.ErasureRequested):
            if signup.state is State.ERASING:  # not erased meanwhile, say by the operator or _erase_overdue
                self._send(signup, "erased", f"erased.{e.originator_version}", invite=e.originator_version, cancel=e.freed)
            # Sent (or never sendable): erase. Again if a crash came between recording it and destroying the key.
            self.signups.erase(signup.id, token=None)

    def _erase_overdue(self, now: datetime) -> None:
        """While mail cannot go out, erase without the cancellation whoever asked ERASE_WITHIN ago or more.
        The erasures not finished yet all come after the position: finishing one comes before moving past it."""
        for n in self.app.recorder.select_notifications(self.position, BATCH, topics=ERASURES, inclusive_of_start=False):
            asked = self.app.mapper.to_domain_event(n)
            if now - asked.timestamp >= ERASE_WITHIN and self.signups.get(asked.originator_id).state is State.ERASING:
                self.signups.erase(asked.originator_id, token=None)
                log.warning("mailer: erased %s without its calendar cancellation: mail could not go out", asked.originator_id)

    def _remind(self, now: datetime) -> None:
        for key, (consultation, session) in list(self.sessions.items()):
            due = session.starts_at - REMIND_BEFORE
            if now >= session.starts_at:
                del self.sessions[key]
            elif now >= due:
                for signup in self.signups.confirmed(consultation.id, session.id):
                    if reminded(self.signups.confirmed_at(signup), session.starts_at):
                        self._send(signup, "reminder", f"reminder.{signup.confirmed_version}")
                del self.sessions[key]

    def _schedule(self, consultation: Consultation) -> None:
        for session in consultation.definition.sessions:
            self.sessions[(consultation.id, session.id)] = (consultation, session)

    def _send(
        self, signup: Signup, kind: str, name: str, invite: int | None = None, cancel: str | None = None, at: datetime | None = None,
    ) -> None:
        """Send one message unless it was sent before; `invite`: attach a calendar invitation of this sequence; `at`: when
        what it answers was asked (a confirmation, or a request for the details again)."""
        message_id = f"<{name}.{signup.id}@{self.domain}>"
        if message_id in signup.sent:
            return
        contact = self.signups.contact(signup)
        if contact is None:  # erased: there is no one to write to
            return
        consultation = self.signups.consultation_of(signup)
        session = next(s for s in consultation.definition.sessions if s.id == (cancel or signup.session_id))
        try:
            mail = self._compose(signup, contact, consultation, session, kind, message_id, invite, cancel, at)
            self.transport.send(str(signup.id), mail)
        except (MailError, ValueError) as e:
            if isinstance(e, MailError) and not e.refused:
                raise  # the server or the network: try again later, holding everything back in order
            # This message can never go out (refused for good, or an address mail cannot carry);
            # waiting on it would hold back everyone else's mail.
            log.warning("mailer: %s cannot be delivered, skipped: %s", message_id, e)
            return
        self.signups.record_sent(signup.id, message_id)
        log.info("mailer: sent %s", message_id)

    def _compose(
        self, signup: Signup, contact: Contact, consultation: Consultation, session: Session, kind: str, message_id: str,
        invite: int | None, cancel: str | None, at: datetime | None = None,
    ) -> EmailMessage:
        subject, body = self.templates[kind]
        fields = self._fields(signup, contact, consultation, session)
        # Only what is true of this message: a cancellation carries a calendar part only if a seat was held.
        fields["outcome"] = (
            "Your seat is free again, and the attached cancellation removes the session from your calendar."
            if cancel else "You had not confirmed a seat, so nothing was booked."
        )
        if kind == "confirmed":
            # Asked for again within the day, the details come after the reminder went out (or would have).
            assert at is not None  # a confirmation's details are sent with the time they were asked for
            fields["reminder"] = " We will remind you a day before." if reminded(at, session.starts_at) else ""
        ics = None
        if invite is not None and (kind != "cancelled" or cancel):
            ics = calendar(
                uid=f"{signup.id}.{session.id}@{self.domain}", sequence=invite, start=session.starts_at,
                minutes=session.duration_minutes, title=session.title, description=consultation.definition.title,
                location=session.venue, organizer=self.sender, attendee=contact.email, cancel=cancel is not None,
            )
        return message(
            message_id, self.sender, contact.name, contact.email, subject.substitute(fields), body.substitute(fields),
            ics=ics, cancel=cancel is not None, policy=self.transport.policy,
        )

    def _fields(self, signup: Signup, contact: Contact, consultation: Consultation, session: Session) -> dict[str, str]:
        links = self.public_url + f"/signups/{signup.id}"
        return {
            "name": contact.name,
            "consultation": consultation.definition.title,
            "session": session.title,
            "when": when(session.starts_at, session.duration_minutes),
            "venue": session.venue,
            "confirm_url": f"{links}/confirm?token={self.signups.links.token(Purpose.CONFIRM, signup.id, signup.request)}",
            "cancel_url": f"{links}/cancel?token={self.signups.links.token(Purpose.MANAGE, signup.id)}",
            "erase_url": f"{links}/erase?token={self.signups.links.token(Purpose.MANAGE, signup.id)}",
        }
