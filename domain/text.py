"""One rule for text people type, whoever types it: respondents' answers, signups' and staff names, notes.

Text is stored in Unicode NFC, so the same words compare and count alike. Control characters
have no place in it (a NUL or an escape sequence in a stored answer only ever causes harm), and a
text that shows nothing once invisible characters (spaces, zero-width and other format
characters) are set aside is blank, however many of them it holds. A name is shown beside other
text, in the attendee list, in mail headers and in the audit history: one that carries a
bidirectional override or isolate could make what follows it read backwards, so names refuse them;
and one holding `=?` would be decoded in a mail header as an RFC 2047 encoded word (into another
address, or line breaks that add headers), so names refuse that too.

A moment the system writes into text (a problem's detail) reads as in its JSON: UTC, with `Z`.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ENCODED_WORD = "=?"  # begins an RFC 2047 encoded word, decoded (line breaks too, before Python 3.11.10) when a mail header is written
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
STACKED = 30  # combining marks in a row at most: Unicode's stream-safe text format (UAX #15)


def visible(text: str) -> bool:
    """Whether the text shows anything at all."""
    return any(unicodedata.category(c) not in _INVISIBLE for c in text)


def stacked(text: str) -> bool:
    """Whether the text stacks more than `STACKED` marks on one character ("zalgo" text, drawn over the lines
    around it wherever it is shown). No language needs more: Unicode's stream-safe format allows 30.

    Counted as people see them: in the decomposed text (an "á" is two), every mark (enclosing ones and those of
    combining class 0 too), and invisible format characters (a joiner, a mark of direction) between them skipped,
    not taken as the end of the stack."""
    categories = list(map(unicodedata.category, unicodedata.normalize("NFD", text)))  # in C
    if "Mn" not in categories and "Mc" not in categories and "Me" not in categories:  # the usual case
        return False
    run = 0
    for category in categories:
        if category[0] == "M":
            run += 1
            if run > STACKED:
                return True
        elif category != "Cf":
            run = 0
    return False


def free_text(text: str) -> str:
    """Free text as stored: NFC, line ends as `\\n`, control characters other than line breaks and tabs dropped."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")


def name_problem(name: str, limit: int = 200, what: str = "A name") -> str | None:
    """Why a name (or a label, `what`) cannot be recorded, or None. Check the name as `name()` gives it."""
    if not visible(name) or not 1 <= len(name) <= limit:
        return f"{what} needs between 1 and {limit} characters, some of them visible."
    if any(unicodedata.category(c) == "Cc" for c in name):
        return f"{what} cannot hold control characters."
    if BIDI_CONTROLS.intersection(name):
        return f"{what} cannot hold bidirectional override or isolate characters."
    if ENCODED_WORD in name:
        return f"{what} cannot hold {ENCODED_WORD!r}: in a mail header it would begin an encoded word, which mail programs decode into other text."
    return None


def name(text: str) -> str:
    """A name as stored: NFC, on one line, single spaces (it may go into mail headers)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def excerpt(value: object, limit: int = 40) -> str:
    """What an error may quote of what someone sent: short, and escaped."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def moment(at: datetime) -> str:
    """`at` in ISO 8601 as the API's JSON writes it: `2026-05-07T13:00:00Z`."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
