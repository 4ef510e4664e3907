"""The composition root: what every process (`agora serve`, `agora work`, each CLI command) builds
from one `Settings`: the application and its contexts, the key stores, Redis clients, workers.

Nothing else reads configuration: everything else is handed what it needs from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import store
from audit.history import History
from audit.ledger import Ledger
from audit.signing import Signer
from domain.access.service import Accesses
from domain.campaigns.service import Campaigns
from domain.consultations.service import Consultations, Keyed
from domain.core import Agora
from domain.review.service import Review
from domain.signups.service import Signups
from domain.signups.signup import LinkTokens
from domain.staff.service import Staff
from reports.service import Reports
from runtime.settings import Settings
from store.keys import KeyStore
from workers import views
from workers.checkpointer import Checkpointer
from workers.clusterer import Clusterer
from workers.follower import Followers
from workers.mail import FolderTransport, Transport, transport
from workers.mailer import Mailer


def redis_client(settings: Settings) -> redis.asyncio.Redis:
    """The API's Redis client: a bounded pool that makes callers wait for a connection rather than fail at once.
    Every command the API sends answers in milliseconds, but a process under a burst of requests may read
    the reply, or finish opening a connection, a second or more later (CI saw both): a Redis that does not
    answer or connect within 5 s is taken as down (a hung one held each connection, and then each request,
    for good; one that is down refuses a connection at once)."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=5, socket_timeout=5, socket_connect_timeout=5,
        # A pooled connection that a restarted Redis closed fails its next command: sent again once, on a new connection
        # (else each of them failed a request, a 503, as it came round, for minutes after Redis was back).
        retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
    )
    return redis.asyncio.Redis.from_pool(pool)


def secret(settings: Settings) -> str:
    """Signs staff tokens and signup links: AGORA_SECRET, or one made once in the data folder."""
    return settings.secret or store.local_secret(store.data_dir(settings.data_dir))


class System:
    """The application with its contexts on one event store. Close it when done (or use `with`)."""

    def __init__(self, settings: Settings | None = None, store_env: dict[str, str] | None = None) -> None:
        """`store_env` chooses the event store (eventsourcing's variables); default: the environment's, or SQLite in the data folder."""
        self.settings = settings = settings or Settings.from_env()
        self.data_dir = store.data_dir(settings.data_dir)
        env = store.environment(self.data_dir, store_env)
        self.app = Agora(env={**env, **store.CODEC})
        self.texts = KeyStore(self.app.factory, "data_keys")  # free-text answers
        self.contact_keys = KeyStore(self.app.factory, "contact_keys")  # signups' names and emails, indexed by email
        self.consultations = Consultations(self.app, self.texts, Keyed(secret(settings)))
        self.staff_keys = KeyStore(self.app.factory, "staff_keys")  # staff names, emails, password hashes, indexed by email
        self.staff = Staff(self.app, self.staff_keys, settings.password_profile)
        self.review = Review(self.app, self.consultations, self.staff, self.texts)
        self.signups = Signups(self.app, self.consultations, self.contact_keys, LinkTokens(secret(settings)))
        self.reports = Reports(self.app, self.consultations, self.staff, self.texts)
        self.campaigns = Campaigns(self.app, self.consultations, self.staff, self.review)  # clusters and campaigns
        self.ledger = Ledger(self.app.factory)  # the Merkle tree of the log and its signed checkpoints
        self.access = Accesses(self.app)  # who saw personal data
        self.history = History(self.app, [self.texts, self.contact_keys, self.staff_keys], self.staff.name)  # the auditors' reading of the log

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> System:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # Redis

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    # Workers

    def workers(self, mail: bool = True) -> Followers:
        """The projection followers, the checkpointer, and the mailer unless `mail` is false; not started."""
        settings = self.settings
        workers = views.followers(self.app, self.redis(), settings.redis_prefix, self.mailer() if mail else None, settings.follower_attempts)
        workers.runners.append(self.checkpointer())
        if settings.cluster_responses:
            workers.runners.append(self.clusterer())
        return workers

    def clusterer(self) -> Clusterer:
        return Clusterer(self.app, self.texts, self.settings.cluster_threshold)

    def checkpointer(self) -> Checkpointer:
        settings = self.settings
        return Checkpointer(self.app, self.ledger, self.signer(), settings.checkpoint_events, settings.checkpoint_seconds)

    def signer(self) -> Signer:
        """Signs checkpoints with the key in the data folder, made on first use."""
        return Signer(self.data_dir, self.settings.origin)

    def mailer(self) -> Mailer:
        return Mailer(self.signups, self.mail_transport(), self.settings.mail_from, self.settings.links_url)

    def mail_transport(self) -> Transport:
        """SMTP if SMTP_URL is set, else the data folder's `outbox`, one .eml per message."""
        return transport(self.settings.smtp_url or None, self.outbox)

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    # Privacy operations that span contexts

    def forget_mail(self, signup_id: Any) -> None:
        """Delete a person's messages from the outbox, if there is one (say, from before SMTP was set up)."""
        if self.outbox.exists():
            FolderTransport(self.outbox).forget(str(signup_id))

    def keys_held(self) -> set[str]:
        """The ids of every key the key stores hold (free text, contacts, staff): what an audit checks the log's sealed values against."""
        return self.texts.held() | self.contact_keys.held() | self.staff_keys.held()

    def reshred(self) -> tuple[int, int]:
        """Destroy again every key the log says was destroyed, and erased people's outbox files:
        run after restoring the data folder or the key store from a backup. Returns how many of
        those keys were still held, and how many the log names."""
        erased = self.signups.erased()
        named = [
            (self.texts, set(self.review.shredded_keys())),
            (self.contact_keys, {e.key_id for e in erased}),
            (self.staff_keys, {k for e in self.staff.erased() for k in e.key_ids}),
        ]
        held = sum(len(keys.get_many(ids)) for keys, ids in named)  # only those named, not every key
        for keys, ids in named:
            keys.destroy(ids)
        for e in erased:
            self.forget_mail(e.originator_id)
        return held, sum(len(ids) for _, ids in named)
