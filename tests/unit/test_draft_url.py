"""The link to the draft: the form serves it for people to follow, so only an absolute http(s) URL (or none)."""

from __future__ import annotations

import msgspec
import pytest

from domain.consultations.consultation import Consultation, check_draft_url, read_definition
from domain.errors import InvalidDefinition
from projections.form import decode_form
from tests.conftest import SEED

SEED_JSON = msgspec.json.encode(read_definition(SEED.read_bytes()))

REFUSED = [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)", "//example.org/draft", "/draft", "example.org/draft", "https://", "http:///draft",
    "https://example.org/a draft", "https://example.org/\ndraft", "\x01https://example.org/draft", "http://[::1/draft", "ftp://example.org/draft",
]


@pytest.mark.parametrize("url", REFUSED)
def test_anything_but_an_absolute_http_url_is_refused_naming_the_field(url: str) -> None:
    c = Consultation(read_definition(SEED.read_bytes()))
    with pytest.raises(InvalidDefinition, match="^draft_url: not an absolute http"):
        c.set_draft_url(url)
    assert c.draft_url == "" and len(c.collect_events()) == 1  # nothing recorded


@pytest.mark.parametrize("url", ["https://example.org/draft", "http://example.org:8080/draft?v=2#part-1", "HTTPS://EXAMPLE.ORG/", "https://bücher.example/draft", ""])
def test_an_absolute_http_url_or_none_is_taken(url: str) -> None:
    c = Consultation(read_definition(SEED.read_bytes()))
    c.set_draft_url("https://example.org/first")
    c.set_draft_url(url)
    assert c.draft_url == url
    check_draft_url(url)


def test_a_recorded_definition_is_read_back_whatever_its_link() -> None:
    """Checked where a link is set, not in the definition itself, which events are decoded into."""
    definition = msgspec.structs.replace(read_definition(SEED.read_bytes()), draft_url="javascript:alert(1)")
    assert msgspec.json.decode(msgspec.json.encode(definition), type=type(definition)).draft_url == "javascript:alert(1)"


@pytest.mark.parametrize(("recorded", "served"), [("javascript:alert(1)", ""), ("https://example.org/draft", "https://example.org/draft")])
def test_a_link_recorded_before_links_were_checked_is_not_served(recorded: str, served: str) -> None:
    h = {b"definition": SEED_JSON, b"is_open": b"1", b"closes_at": b"", b"draft_url": recorded.encode()}
    form = decode_form(h)
    assert form is not None and form.draft_url == served
