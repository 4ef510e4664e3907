"""Reviewing responses: claims, notes, tags, flags, quotes, redactions, completion; the coding frame.

Every action is recorded on the response's `ReviewCase` and names the staff member who took it.
The case enforces who may act on a response (the holder of a live claim); here each action also
checks the actor's role, so the domain holds the rule whatever calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from domain.consultations.consultation import Answer, Theme
from domain.consultations.service import Consultations
from domain.core import Agora
from domain.text import moment
from domain.consultations.response import Response
from domain.errors import FieldError, InvalidInput, ShredIncomplete
from domain.review.case import ClaimConflict, Flag, Outcome, ReviewCase, case_id
from domain.review.casefile import CaseFile, fold_case_file
from domain.review.frame import CodingFrame, frame_id
from domain.sealed import Sealed, Vault
from domain.staff.member import Role
from domain.staff.service import Staff


class Review:
    def __init__(self, app: Agora, consultations: Consultations, staff: Staff, texts: Vault) -> None:
        self.app = app
        self.consultations = consultations
        self.staff = staff
        self.texts = texts

    # Reading a response as it now reads

    def answers(self, response_id: UUID) -> dict[str, Answer | None]:
        """A response's answers as they now read: texts decrypted, redactions applied; None where erased."""
        response = self.consultations.response(response_id)
        texts = dict(response.texts)
        case = self.app.find(case_id(response_id), ReviewCase)
        if case:
            texts.update({q: versions[-1] for q, versions in case.redactions.items()})
        return {**response.answers, **{q: self.texts.unseal(sealed, q) for q, sealed in texts.items()}}

    def case_file(self, response_id: UUID, originals: bool) -> CaseFile:
        """The response with its whole case; with `originals`, each redacted answer as first given, until shredded."""
        response = self.consultations.response(response_id)
        case = self.app.find(case_id(response_id), ReviewCase)
        events = self.app.events.get(case_id(response_id)) if case else []
        slug = self.consultations.by_id(response.consultation_id).slug
        return fold_case_file(
            response, slug, self.answers(response_id), case, events, lambda q, sealed: self.texts.unseal(sealed, q),
            datetime.now(UTC), originals,
        )

    def history(self, response_id: UUID) -> list[Any]:
        """Every recorded event about a response, oldest first: its submission, then its review."""
        return [*self.app.events.get(self.consultations.response(response_id).id), *self.app.events.get(case_id(response_id))]

    # Actions on a response's case

    def claim(self, response_id: UUID, by: UUID, lease: timedelta, fresh: bool = False) -> tuple[datetime, int]:
        """Claim a response for review (`fresh`: one nobody holds, `by` included); returns when the lease ends, and
        the event's position."""
        case = self._case(response_id, create=True)
        position = self._act(case, by, Role.REVIEWER, lambda now: case.claim(by, now, lease, fresh))
        assert case.until is not None and position is not None  # a claim always records
        return case.until, position

    def release(self, response_id: UUID, by: UUID) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.release(by, now))

    def note(self, response_id: UUID, by: UUID, text: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.note(by, text, now))

    def tag(self, response_id: UUID, by: UUID, theme_id: str) -> int | None:
        case = self._case(response_id)
        self.frame(self.consultations.response(response_id).consultation_id).active(theme_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.tag(by, theme_id, now))

    def untag(self, response_id: UUID, by: UUID, theme_id: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.untag(by, theme_id, now))

    def flag(self, response_id: UUID, by: UUID, flag: Flag, reason: str, duplicate_of: UUID | None = None) -> int | None:
        case = self._case(response_id)
        if duplicate_of is not None:  # named in the body: 422, not 404
            original = self.app.find(duplicate_of, Response)
            if original is None or original.consultation_id != self.consultations.response(response_id).consultation_id:
                raise InvalidInput([FieldError("duplicate_of", "There is no such response in this response's consultation.")])
        return self._act(case, by, Role.REVIEWER, lambda now: case.flag(by, flag, reason, duplicate_of, now))

    def unflag(self, response_id: UUID, by: UUID, flag: Flag, reason: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.unflag(by, flag, reason, now))

    def unmark_quote(self, response_id: UUID, by: UUID, question_id: str, start: int, end: int, reason: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.unmark_quote(by, question_id, start, end, reason, now))

    def revert_redaction(self, response_id: UUID, by: UUID, question_id: str, reason: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.revert_redaction(by, question_id, reason, now))

    def mark_quote(self, response_id: UUID, by: UUID, question_id: str, start: int, end: int) -> int | None:
        case = self._case(response_id)
        text = self._text(response_id, question_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.mark_quote(by, question_id, start, end, text, now))

    def redact(
        self, response_id: UUID, by: UUID, question_id: str, start: int, end: int, reason: str, expect: str | None = None
    ) -> int | None:
        """Replace a span of a text answer (reading `expect`, if given); the earlier version stays readable until an admin shreds it."""
        case = self._case(response_id)
        text = self._text(response_id, question_id)

        def seal(redacted: str) -> Sealed:
            return self.texts.seal([(question_id, redacted)])[0]

        return self._act(case, by, Role.REVIEWER, lambda now: case.redact(by, question_id, start, end, reason, text, seal, now, expect))

    def shred_originals(self, response_id: UUID, by: UUID, question_id: str) -> int:
        """Confirm a redaction: destroy the keys of every earlier version of the answer, for good."""
        self.staff.get(by).require(Role.ADMIN)
        case = self._case(response_id, create=True)  # never reviewed, so never redacted: the case says so
        original = self.consultations.response(response_id).texts.get(question_id)
        if original is None:
            raise InvalidInput([FieldError("question_id", "This response has no such text answer.")])
        key_ids = case.superseded_keys(question_id, original)
        case.shred_originals(by, question_id, key_ids)
        position = self.app.record(case)  # the record comes first; destroying again is harmless
        assert position is not None
        try:
            self.texts.destroy(key_ids)
        except PersistenceError as e:
            raise ShredIncomplete(f"The shredding is recorded but not finished ({e}); shred again to finish it.") from e
        return position

    def complete(self, response_id: UUID, by: UUID, outcome: Outcome, reason: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.complete(by, outcome, reason, now))

    def reopen(self, response_id: UUID, by: UUID, reason: str) -> int | None:
        case = self._case(response_id, create=True)  # a response never reviewed has nothing to reopen: the case says so
        return self._act(case, by, Role.EDITOR, lambda now: case.reopen(by, reason))

    def shredded_keys(self) -> list[str]:
        """Every text key the log says was destroyed: what to destroy again after restoring a backup."""
        return [k for e in self.app.select_events(ReviewCase.OriginalsShredded) for k in e.key_ids]

    # The coding frame

    def frame(self, consultation_id: UUID) -> CodingFrame:
        """The consultation's coding frame; an empty one, saved with its first theme, if it was recorded without."""
        frame = self.app.find(frame_id(consultation_id), CodingFrame)
        return frame or CodingFrame(consultation_id=consultation_id, themes=())

    def add_theme(self, slug: str, theme: Theme, by: UUID) -> int | None:
        return self._edit_frame(slug, by, lambda f: f.add(theme, by))

    def revise_theme(self, slug: str, theme: Theme, by: UUID) -> int | None:
        return self._edit_frame(slug, by, lambda f: f.revise(theme, by))

    def retire_theme(self, slug: str, theme_id: str, by: UUID) -> int | None:
        return self._edit_frame(slug, by, lambda f: f.retire(theme_id, by))

    def _edit_frame(self, slug: str, by: UUID, command: Callable[[CodingFrame], None]) -> int | None:
        self.staff.get(by).require(Role.EDITOR)
        frame = self.frame(self.consultations.get(slug).id)
        command(frame)
        return self.app.record(frame)

    def _text(self, response_id: UUID, question_id: str) -> str:
        text = self.answers(response_id).get(question_id)
        if question_id not in self.consultations.response(response_id).texts or not isinstance(text, str):
            raise InvalidInput([FieldError("question_id", "Choose a text answer of this response that is not erased.")])
        return text

    def _case(self, response_id: UUID, create: bool = False) -> ReviewCase:
        self.consultations.response(response_id)
        case = self.app.find(case_id(response_id), ReviewCase)
        if case is not None:
            return case
        if not create:
            raise ClaimConflict("Claim the response first: only the holder of a live claim can act on it.")
        return ReviewCase(response_id)

    def _act(self, case: ReviewCase, by: UUID, role: Role, command: Callable[[datetime], None]) -> int | None:
        """Run a review command as `by`, who needs `role`; the position of its event, or None if it changed nothing."""
        self.staff.get(by).require(role)
        try:
            command(datetime.now(UTC))
        except ClaimConflict as e:
            if e.holder is None or e.until is None:
                raise
            holder = self.staff.name(e.holder)  # say who, in words a colleague recognises
            raise ClaimConflict(f"Claimed by {holder} until {moment(e.until)}.", e.holder, e.until) from None
        try:
            return self.app.record(case)
        except IntegrityError:  # another action on this case was recorded first
            raise ClaimConflict("Someone else acted on this response a moment ago; look again.") from None
