"""The API's settings, read from environment variables (see README, "Configuration")."""

from __future__ import annotations

import os

import msgspec


class Settings(msgspec.Struct, frozen=True):
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "agora"
    # Requests per minute per client on public POSTs; 0 turns the limit off (benchmarks).
    rate_limit_per_minute: int = 30
    max_body_bytes: int = 64 * 1024
    # How long `?after=` waits for a view to reach a position before answering 503.
    view_wait_seconds: float = 2.0
    idempotency_ttl_seconds: int = 24 * 3600
    # Run the projection followers inside the API process (the embedded default).
    inline_followers: bool = True
    # Signs staff tokens; every API process of a deployment needs the same one.
    secret: str = ""
    token_hours: int = 8
    lease_minutes: int = 30
    # The mailer (see README, "Signups and email"): SMTP, or the data folder's outbox if unset.
    smtp_url: str = ""
    mail_from: str = "Agora <agora@localhost>"
    # Where people reach the API: the links in emails start with it.
    public_url: str = "http://127.0.0.1:8000"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        names = {
            "redis_url": "REDIS_URL",
            "redis_prefix": "AGORA_REDIS_PREFIX",
            "rate_limit_per_minute": "AGORA_RATE_LIMIT_PER_MINUTE",
            "max_body_bytes": "AGORA_MAX_BODY_BYTES",
            "view_wait_seconds": "AGORA_VIEW_WAIT_SECONDS",
            "idempotency_ttl_seconds": "AGORA_IDEMPOTENCY_TTL_SECONDS",
            "inline_followers": "AGORA_INLINE_FOLLOWERS",
            "secret": "AGORA_SECRET",
            "token_hours": "AGORA_TOKEN_HOURS",
            "lease_minutes": "AGORA_LEASE_MINUTES",
            "smtp_url": "SMTP_URL",
            "mail_from": "AGORA_MAIL_FROM",
            "public_url": "AGORA_PUBLIC_URL",
        }
        values = {field: os.environ[var] for field, var in names.items() if var in os.environ}
        return msgspec.convert({**values, **overrides}, cls, strict=False)
