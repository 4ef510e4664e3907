"""Composes the HTTP application: routes, problem handlers, stores, rate limits, lifespan."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.stores.redis import RedisStore

from api.auth import staff_auth
from api.edge import check_body
from api.problems import exception_handlers
from api.public import signups
from api.public.consultations import form, stats, submit
from api.services import Services
from api.staff import accounts, attendees, frame, review
from runtime import System, redis_client, secret
from runtime.settings import Settings


def provide_services(state: State) -> Services:
    return state.services


def create_app(settings: Settings | None = None, store_env: dict[str, str] | None = None) -> Litestar:
    """The API; `store_env` chooses the event store (default: the environment's, or SQLite in the data folder)."""
    settings = settings or Settings.from_env()
    client = redis_client(settings)
    salt = bytearray()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The client's address is only ever used as a salted hash, and only as a rate-limit key
        # in Redis with a TTL. The salt is shared by every API process of the deployment.
        salt_key = f"{settings.redis_prefix}:rate-limit-salt"
        await client.set(salt_key, secrets.token_bytes(32), nx=True)
        salt[:] = await client.get(salt_key)
        system = System(settings, store_env)
        app.state.services = services = Services(system, client, auth)
        followers = None
        if settings.inline_followers:  # on an application instance of their own
            followers = System(settings, store_env).workers().start()
        try:
            yield
        finally:
            await services.close()
            if followers:
                followers.close()
            system.close()
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

    auth = staff_auth(secret(settings), settings.token_hours)

    rate_limit = RateLimitConfig(
        rate_limit=("minute", max(settings.rate_limit_per_minute, 1)),
        identifier_for_request=client_key,
        check_throttle_handler=public_post,
    )
    return Litestar(
        route_handlers=[
            form, submit, stats, signups.sign_up, signups.link_page, signups.act,
            # Only staff routes declare the bearer token in the schema; public ones need none.
            Router(
                "/", route_handlers=[*accounts.routes, *review.routes, *frame.routes, attendees.attendees],
                security=[auth.security_requirement],
            ),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=exception_handlers,
        before_request=check_body,
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig())],
        middleware=[auth.middleware, rate_limit.middleware],
        stores={"rate_limit": RedisStore(client, namespace=f"{settings.redis_prefix}:rate-limit")},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Agora", version="0.1.0", description="Public consultations, event-sourced.", components=[auth.openapi_components]
        ),
        lifespan=[lifespan],
    )

