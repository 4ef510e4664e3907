"""Settings come from the environment in one place, and a bad value names its variable."""

from __future__ import annotations

import pytest

from runtime.settings import ENV, Settings


def test_each_variable_sets_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("AGORA_INLINE_FOLLOWERS", "false")
    monkeypatch.setenv("AGORA_PUBLIC_URL", "https://consult.example.org/")
    settings = Settings.from_env()
    assert (settings.port, settings.inline_followers) == (9001, False)
    assert settings.links_url == "https://consult.example.org"
    assert set(ENV.values()) == set(Settings.__struct_fields__)


def test_links_follow_host_and_port_unless_a_public_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "8080")
    assert Settings.from_env().links_url == "http://0.0.0.0:8080"


@pytest.mark.parametrize(("variable", "value"), [("PORT", "eighty"), ("AGORA_ACCESS_LOG", "perhaps"), ("AGORA_VIEW_WAIT_SECONDS", "soon")])
def test_a_value_that_cannot_be_read_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"^{variable}: Expected"):
        Settings.from_env()
