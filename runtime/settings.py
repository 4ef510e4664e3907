"""Every setting of every process, read from environment variables in one place (docs/configuration.md)."""

from __future__ import annotations

import os
from typing import Annotated

import argon2
import msgspec

Count = Annotated[int, msgspec.Meta(gt=0)]
Limit = Annotated[int, msgspec.Meta(ge=0)]  # 0 turns it off
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Settings(msgspec.Struct, frozen=True):
    # Where this process keeps its files: the SQLite store and its keys, the embedded Redis, the outbox.
    data_dir: str = "var"
    consultations_dir: str = "consultations"  # consultation files loaded by `agora serve`
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    # No access log by default: it would write every respondent's address to the log.
    access_log: bool = False
    # The proxies whose X-Forwarded-For names the client (uvicorn's list); none by default, so a
    # client talking to the server directly cannot name itself anew to escape the rate limits.
    forwarded_allow_ips: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "agora"
    # Requests per minute per client, each purpose with a bucket of its own; 0 turns a limit off.
    rate_limit_per_minute: Limit = 30  # responses
    signup_rate_limit_per_minute: Limit = 30  # signups and their links' actions
    sign_in_rate_limit_per_minute: Limit = 10  # staff sign-in
    max_body_bytes: Count = 64 * 1024
    # Each API process's limits on what clients may hold (cli/limits.py): header size and read time,
    # body read time, idle time between requests on a connection, open connections.
    max_header_bytes: Count = 16 * 1024
    header_timeout_seconds: Seconds = 10.0
    body_timeout_seconds: Seconds = 30.0
    keep_alive_seconds: Count = 5
    max_connections: Count = 1000
    # How long `?after=` waits for a view to reach a position before answering 503.
    view_wait_seconds: Seconds = 2.0
    # Run the projection followers inside the API process (the embedded default).
    inline_followers: bool = True
    # Tries of an event a view's fold fails on (not an outage) before that view stops on it (`agora status`).
    follower_attempts: Count = 5
    # Signs staff tokens and signup links; every process of a deployment needs the same one.
    secret: str = ""
    token_hours: Count = 8
    lease_minutes: Count = 30
    password_profile: str = "RFC_9106_LOW_MEMORY"  # argon2's parameters, by the name of a profile
    # The mailer: SMTP, or the data folder's outbox if unset.
    smtp_url: str = ""
    mail_from: str = "Agora <agora@localhost>"
    # Where people reach the API: the links in emails start with it (default: http://HOST:PORT).
    public_url: str = ""
    # The ledger's checkpoints: every so many events or seconds (also when nothing happened).
    checkpoint_events: Count = 1000
    checkpoint_seconds: Seconds = 60.0  # a respondent waits at most this long for an inclusion proof
    # Names the deployment's log in every checkpoint (default: the public URL's host and port, then /agora).
    log_origin: str = ""
    # How alike two responses' free text must be to share a cluster: Jaccard similarity of their shingles,
    # the longer text's extra shingles counting half (domain/campaigns/similarity.py).
    cluster_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    # The clusterer records each response's place among near-duplicates (an event per response with free text).
    cluster_responses: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values = {field: os.environ[var] for var, field in ENV.items() if var in os.environ}
        try:
            settings = msgspec.convert({**values, **overrides}, cls, strict=False)
        except msgspec.ValidationError as e:  # name the variable, not the field
            for var, field in ENV.items():
                if str(e).endswith(f"`$.{field}`"):
                    raise ValueError(f"{var}: {str(e).split(' - at ')[0]}") from None
            raise
        if not isinstance(getattr(argon2.profiles, settings.password_profile, None), argon2.Parameters):
            names = ", ".join(n for n in dir(argon2.profiles) if isinstance(getattr(argon2.profiles, n), argon2.Parameters))
            raise ValueError(f"AGORA_PASSWORD_PROFILE: no such profile of argon2's: {settings.password_profile!r}; the profiles are {names}")
        return settings

    @property
    def links_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def origin(self) -> str:
        return self.log_origin or f"{self.links_url.partition('://')[2].partition('/')[0]}/agora"


# Each setting's environment variable.
ENV = {
    "AGORA_DATA_DIR": "data_dir",
    "AGORA_CONSULTATIONS": "consultations_dir",
    "HOST": "host",
    "PORT": "port",
    "AGORA_ACCESS_LOG": "access_log",
    "FORWARDED_ALLOW_IPS": "forwarded_allow_ips",
    "REDIS_URL": "redis_url",
    "AGORA_REDIS_PREFIX": "redis_prefix",
    "AGORA_RATE_LIMIT_PER_MINUTE": "rate_limit_per_minute",
    "AGORA_SIGNUP_RATE_LIMIT_PER_MINUTE": "signup_rate_limit_per_minute",
    "AGORA_SIGN_IN_RATE_LIMIT_PER_MINUTE": "sign_in_rate_limit_per_minute",
    "AGORA_MAX_BODY_BYTES": "max_body_bytes",
    "AGORA_MAX_HEADER_BYTES": "max_header_bytes",
    "AGORA_HEADER_TIMEOUT_SECONDS": "header_timeout_seconds",
    "AGORA_BODY_TIMEOUT_SECONDS": "body_timeout_seconds",
    "AGORA_KEEP_ALIVE_SECONDS": "keep_alive_seconds",
    "AGORA_MAX_CONNECTIONS": "max_connections",
    "AGORA_VIEW_WAIT_SECONDS": "view_wait_seconds",
    "AGORA_INLINE_FOLLOWERS": "inline_followers",
    "AGORA_FOLLOWER_ATTEMPTS": "follower_attempts",
    "AGORA_SECRET": "secret",
    "AGORA_TOKEN_HOURS": "token_hours",
    "AGORA_LEASE_MINUTES": "lease_minutes",
    "AGORA_PASSWORD_PROFILE": "password_profile",
    "SMTP_URL": "smtp_url",
    "AGORA_MAIL_FROM": "mail_from",
    "AGORA_PUBLIC_URL": "public_url",
    "AGORA_CHECKPOINT_EVENTS": "checkpoint_events",
    "AGORA_CHECKPOINT_SECONDS": "checkpoint_seconds",
    "AGORA_LOG_ORIGIN": "log_origin",
    "AGORA_CLUSTER_THRESHOLD": "cluster_threshold",
    "AGORA_CLUSTER_RESPONSES": "cluster_responses",
}

# Read by eventsourcing itself to choose and reach the event store (the embedded SQLite file if unset).
STORE_ENV = (
    "PERSISTENCE_MODULE", "SQLITE_DBNAME", "POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT",
    "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SCHEMA",
)
