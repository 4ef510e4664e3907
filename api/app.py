"""Composes the HTTP application: routes, problem handlers, stores, rate limits, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin

from api.auth import staff_auth
from api.edge import StrictStructs, check_request, head_as_get
from api.limits import AtomicRateLimit, CountingStore, OpenWhenRedisDown
from api.problems import exception_handlers, http_problem
from api.public import pages, report, signups
from api.public import audit as public_audit
from api.public.consultations import form, stats, submit
from api.services import Services
from api.staff import accounts, attendees, audit, campaigns, frame, review
from api.staff import report as report_desk
from runtime import System, redis_client, secret
from runtime.settings import Settings


def provide_services(state: State) -> Services:
    return state.services


def provide_system(state: State) -> System:
    return state.system


def provide_reports(state: State) -> report.PublishedReports:
    return state.reports


def create_app(settings: Settings | None = None, store_env: dict[str, str] | None = None) -> Litestar:
    """The API; `store_env` chooses the event store (default: the environment's, or SQLite in the data folder)."""
    settings = settings or Settings.from_env()
    client = redis_client(settings)
    # The rate limits' own pool: no flood of reads can leave them without a connection.
    limiting = redis_client(settings)
    counting = CountingStore(limiting, namespace=f"{settings.redis_prefix}:rate-limit")
    salt = bytearray()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The client's address is only ever used as a salted hash, and only as a rate-limit key
        # in Redis with a TTL. The salt is shared by every API process of the deployment.
        salt_key = f"{settings.redis_prefix}:rate-limit-salt"
        for wait in (0.1, 0.2, 0.5, 1, 2, 4, 8, 0):  # Redis may be (re)starting beside us: wait for it, a while
            try:
                await client.set(salt_key, secrets.token_bytes(32), nx=True)
                salt[:] = await client.get(salt_key)
                break
            except redis.ConnectionError:
                if not wait:
                    raise
                await asyncio.sleep(wait)
        watching = asyncio.create_task(counting.watch())
        system = System(settings, store_env)
        app.state.services = services = Services(system, client, auth)
        app.state.system = system
        app.state.reports = report.PublishedReports(system, client)
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
            watching.cancel()
            await limiting.aclose()

    def client_key(request: Request) -> str:
        client = get_remote_address(request)
        with contextlib.suppress(ValueError):  # not an address (a Unix socket, a test client): as it is
            address = ipaddress.ip_address(client)
            # An IPv6 client holds a whole /64: count the network, or it could rotate addresses freely.
            client = str(ipaddress.ip_network(f"{address}/64", strict=False) if address.version == 6 else address)
        return hmac.new(bytes(salt), client.encode(), hashlib.sha256).hexdigest()

    def limit(purpose: str, per_minute: int) -> RateLimitConfig | None:
        """A bucket per client for the POSTs whose handler names this purpose (`opt={"rate_limit": purpose}`);
        None when the limit is off (0): no middleware for every request to pass through."""
        if per_minute <= 0:
            return None

        # Async: litestar runs a plain function in a worker thread, a thread hop per request and limit.
        async def applies(request: Request) -> bool:
            return request.method == "POST" and request.route_handler.opt.get("rate_limit") == purpose

        return RateLimitConfig(
            rate_limit=("minute", per_minute),
            identifier_for_request=lambda request: f"{purpose}:{client_key(request)}",
            check_throttle_handler=applies,
            # Counted in Redis in one step: the limit holds across API processes. Only sign-in is refused while Redis is down.
            middleware_class=AtomicRateLimit if purpose == "sign-in" else OpenWhenRedisDown,
        )

    auth = staff_auth(secret(settings), settings.token_hours)

    # Separate buckets: thirty responses from one address must not lock its staff out of signing in.
    limits = [
        config for config in (
            limit("responses", settings.rate_limit_per_minute),
            limit("signups", settings.signup_rate_limit_per_minute),
            limit("sign-in", settings.sign_in_rate_limit_per_minute),
            limit("proofs", settings.rate_limit_per_minute),  # a respondent's inclusion proof, by their receipt
        ) if config is not None
    ]
    app = Litestar(
        route_handlers=[
            form, submit, stats, signups.sign_up, signups.link_page, signups.act, pages.favicon, *report.routes, *public_audit.routes,
            # Only staff routes declare the bearer token in the schema; public ones need none.
            Router(
                "/", route_handlers=[*accounts.routes, *review.routes, *frame.routes, attendees.attendees, *audit.routes, *report_desk.routes, *campaigns.routes],
                security=[auth.security_requirement],
            ),
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False), "system": Provide(provide_system, sync_to_thread=False),
            "reports": Provide(provide_reports, sync_to_thread=False),
        },
        exception_handlers=pages.as_pages(exception_handlers),  # a browser following a signup link gets pages
        template_config=pages.TEMPLATES,
        before_request=check_request,
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(exception_handler=pages.as_page(http_problem))), StrictStructs()],  # its handler for raised problems: pages too
        middleware=[auth.middleware, *(limit.middleware for limit in limits)],
        stores={"rate_limit": counting},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Agora", version="0.1.0", description="Public consultations, event-sourced.", components=[auth.openapi_components]
        ),
        lifespan=[lifespan],
    )
    # Around routing, which knows only the methods each handler declares: a HEAD is routed as its GET.
    app.asgi_handler = head_as_get(app.asgi_handler)
    return app

