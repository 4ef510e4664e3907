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


@pytest.mark.parametrize(("variable", "value"), [
    ("AGORA_CHECKPOINT_SECONDS", "-1"), ("AGORA_CHECKPOINT_EVENTS", "0"), ("AGORA_CLUSTER_THRESHOLD", "2"), ("AGORA_CLUSTER_THRESHOLD", "0"),
    ("AGORA_MAX_BODY_BYTES", "0"), ("AGORA_RATE_LIMIT_PER_MINUTE", "-5"), ("AGORA_VIEW_WAIT_SECONDS", "0"), ("PORT", "70000"),
])
def test_a_value_out_of_its_range_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """A negative checkpoint interval signed checkpoints in a tight loop; a threshold above 1 clustered nothing."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"^{variable}: Expected `(int|float)` (>|>=|<=) "):
        Settings.from_env()


def test_a_rate_limit_of_zero_turns_it_off_and_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_RATE_LIMIT_PER_MINUTE", "0")
    assert Settings.from_env().rate_limit_per_minute == 0


def test_an_unknown_password_profile_names_its_variable_and_the_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_PASSWORD_PROFILE", "nope")
    with pytest.raises(ValueError, match="^AGORA_PASSWORD_PROFILE: no such profile of argon2's: 'nope'; the profiles are .*RFC_9106_LOW_MEMORY"):
        Settings.from_env()
