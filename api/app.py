"""Composes the HTTP application: routes, problem handlers, stores, rate limits, lifespan."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import redis.asyncio
from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.stores.redis import RedisStore

import store
import workers
from api import review, signups, staff
from api.auth import staff_auth
from api.consultations import form, stats, submit
from api.problems import exception_handlers
from api.services import Services
from api.settings import Settings
from domain.application import Agora


def provide_services(state: State) -> Services:
    return state.services


def create_app(settings: Settings | None = None, store_env: dict[str, str] | None = None) -> Litestar:
    """The API; `store_env` chooses the event store (default: `store.environment()`)."""
    settings = settings or Settings.from_env()
    store_env = store.environment() if store_env is None else store_env
    # A bounded pool that makes callers wait for a connection rather than fail at once.
    pool = redis.asyncio.BlockingConnectionPool.from_url(settings.redis_url, max_connections=64, timeout=5)
    client = redis.asyncio.Redis.from_pool(pool)
    salt = bytearray()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The client's address is only ever used as a salted hash, and only as a rate-limit key
        # in Redis with a TTL. The salt is shared by every API process of the deployment.
        salt_key = f"{settings.redis_prefix}:rate-limit-salt"
        await client.set(salt_key, secrets.token_bytes(32), nx=True)
        salt[:] = await client.get(salt_key)
        agora = Agora(env=store_env)
        app.state.services = services = Services(agora, client, settings, auth)
        followers = None
        if settings.inline_followers:
            worker_app = Agora(env=store_env)
            mailer = workers.build_mailer(worker_app, settings.smtp_url, settings.mail_from, settings.public_url)
            followers = workers.followers(worker_app, redis.Redis.from_url(settings.redis_url), settings.redis_prefix, mailer)
            followers.start()
        try:
            yield
        finally:
            await services.close()
            if followers:
                followers.close()
            agora.close()
            await client.aclose()

    def client_key(request: Request) -> str:
        client = get_remote_address(request)
        with contextlib.suppress(ValueError):  # not an address (a Unix socket, a test client): as it is
            address = ipaddress.ip_address(client)
            # An IPv6 client holds a whole /64: count the network, or it could rotate addresses freely.
            client = str(ipaddress.ip_network(f"{address}/64", strict=False) if address.version == 6 else address)
        return hmac.new(bytes(salt), client.encode(), hashlib.sha256).hexdigest()

    async def public_post(request: Request) -> bool:
        return request.method == "POST" and settings.rate_limit_per_minute > 0 and request.route_handler.opt.get("public", False)

    auth = staff_auth(settings.secret or store.local_secret(), settings.token_hours)

    rate_limit = RateLimitConfig(
        rate_limit=("minute", max(settings.rate_limit_per_minute, 1)),
        identifier_for_request=client_key,
        check_throttle_handler=public_post,
    )
    return Litestar(
        route_handlers=[
            form, submit, stats, signups.sign_up, signups.link_page, signups.act,
            # Only staff routes declare the bearer token in the schema; public ones need none.
            Router("/", route_handlers=[*staff.routes, *review.routes, signups.attendees], security=[auth.security_requirement]),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=exception_handlers,
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig())],
        middleware=[auth.middleware, rate_limit.middleware],
        stores={"rate_limit": RedisStore(client, namespace=f"{settings.redis_prefix}:rate-limit")},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Agora", version="0.1.0", description="Public consultations, event-sourced.", components=[auth.openapi_components]
        ),
        lifespan=[lifespan],
    )

