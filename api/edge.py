"""The edge every request passes first: HEAD as GET, then one gate for its query and body.

litestar decodes a body leniently: any Content-Type, the last of duplicate keys, strings turned
into booleans and numbers, and a recursion error (a 500) for JSON nested a thousand deep. This
gate refuses each of those with a problem first, so what the handler then receives was sent as
the schema says, and a `text/plain` POST, which a web page can make its visitors send without a
CORS preflight, never reaches a handler.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from typing import Any, NamedTuple

import msgspec
from litestar import Request
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import Schema
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.enums import RequestEncodingType
from litestar.params import BodyKwarg, ParameterKwarg, PathParameter
from litestar.typing import FieldDefinition

from api.problems import field_error, problem
from domain.text import excerpt

INTEGER = re.compile(r"-?[0-9]{1,18}")  # fits a 64-bit position, in plain digits
MAX_DEPTH = 32  # objects and arrays within each other; the deepest body we take needs 4


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {excerpt(twice)} appears twice in one object")
    return obj


def _depth(value: Any, limit: int, level: int = 1) -> None:
    if isinstance(value, dict | list):
        if level > limit:
            raise ValueError(f"objects and arrays are nested more than {limit} deep")
        for item in value.values() if isinstance(value, dict) else value:
            _depth(item, limit, level + 1)


def _unreadable(detail: str) -> Exception:
    return problem(400, "malformed-request", "The request could not be read", detail)


def _integer(annotation: Any) -> bool:
    return annotation is int or int in typing.get_args(annotation)


def _many(field: FieldDefinition) -> bool:
    return field.is_non_string_collection or field.is_non_string_sequence  # `list[str]`, `list[str] | None`


class _Route(NamedTuple):
    """What the gate checks of a route, read once from its handler's signature."""

    declared: frozenset[str]  # its query parameters
    integers: tuple[str, ...]  # those that are integers
    single: tuple[str, ...]  # those that take one value, not a list
    strict: bool  # an unknown query parameter is refused
    body: tuple[str, Any] | None  # the media type and type of the body it takes


@functools.cache  # per route handler, which lives as long as its app
def _route(handler: Any) -> _Route:
    parameters = handler.parsed_fn_signature.parameters
    declared = {  # not its dependencies (`system`), path parameters (`slug`), headers or cookies
        kwarg.name or name: field
        for name, field in parameters.items()
        if isinstance(kwarg := field.kwarg_definition, ParameterKwarg) and not isinstance(kwarg, PathParameter)
        and not (field.is_di_field or kwarg.header or kwarg.cookie)
    }
    body = None
    if (data := parameters.get("data")) is not None:
        kwarg = data.kwarg_definition
        body = (kwarg.media_type.value if isinstance(kwarg, BodyKwarg) else RequestEncodingType.JSON.value, data.annotation)
    # Ours, not the schema's routes; pages opened from an email (`opt={"any_query": True}`) take whatever a mail client appends.
    strict = str(handler).startswith("api.") and not handler.opt.get("any_query")
    integers = tuple(k for k, f in declared.items() if _integer(f.annotation))
    return _Route(frozenset(declared), integers, tuple(k for k, f in declared.items() if not _many(f)), strict, body)


def check_query(request: Request[Any, Any, Any]) -> None:
    """The query holds only the parameters the route declares (a misspelt filter must not answer with
    everything), each once unless it takes a list (litestar would answer `after=1&after=2` from one of
    them, and `type=a&type=b` as filtered by one type only), and an integer is written as one (litestar
    would read `1e3` as 1000, and `1.9` as 1)."""
    route = _route(request.route_handler)
    query = request.query_params
    unknown = sorted(set(query) - route.declared) if route.strict else None
    if unknown:
        takes = ", ".join(sorted(route.declared)) or "none"
        names = ", ".join(name[:40] for name in unknown[:5])
        detail = f"Unknown query parameter(s): {names}; this route takes: {takes}."
        raise problem(400, "unknown-parameter", "Unknown query parameter", detail, errors=[{"field": unknown[0][:80], "detail": detail}])
    twice = next((key for key in route.single if len(query.getall(key, ())) > 1), None)
    if twice:
        detail = f"The query parameter {twice} is given more than once; give it once."
        raise problem(400, "malformed-request", "The request could not be read", detail, errors=[{"field": twice, "detail": detail}])
    for key in route.integers:
        for value in query.getall(key, ()):
            if not INTEGER.fullmatch(value):
                detail = f"The query parameter {key} must be a whole number of at most 18 digits."
                raise problem(400, "malformed-request", "The request could not be read", detail, errors=[{"field": key, "detail": detail}])


def check_path(request: Request[Any, Any, Any]) -> None:
    """An integer in the path is written as one: litestar reads a segment with `int()`, which takes `+1`, ` 1`,
    `01`, `1_0` (as 10) and `１`, so one version would answer at many addresses (a cache-buster), and an
    editor's `1_0` would withdraw version 10."""
    params = request.path_params
    if not any(type(v) is int for v in params.values()):
        return
    for part, given in zip(request.scope["path_template"].split("/"), request.scope["path"].split("/"), strict=False):
        value = params.get(part[1:-1]) if part.startswith("{") else None
        if type(value) is int and given != str(value):
            raise problem(404, "not-found", "Not found", f"Nothing is at {excerpt(given)} here: a number in the path is written in plain digits, with no sign or leading zero.")


# Headers the API reads one value of: given twice, which one counts depends on who reads it (a
# proxy may keep the last, litestar keeps the first), so a retry's key would not be the same key.
SINGLE_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")


def check_headers(request: Request[Any, Any, Any]) -> None:
    twice = next((name for name in SINGLE_HEADERS if len(request.headers.getall(name, ())) > 1), None)
    key = request.headers.get("Idempotency-Key", "")
    if "," in key:  # copies joined, as a proxy may join them
        twice = "Idempotency-Key"
    if twice:
        _refuse_header(twice, f"The header {twice} is given more than once; give it once.")
    if key != key.strip(" \t"):  # not part of the value to HTTP: a proxy may trim it, and a retry's key would differ
        _refuse_header("Idempotency-Key", "The header Idempotency-Key begins or ends with whitespace; send the key alone.")


def _refuse_header(name: str, detail: str) -> None:
    raise problem(400, "malformed-request", "The request could not be read", detail, errors=[{"field": name, "detail": detail}])


async def check_request(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook: single-valued headers and query parameters are given once, integer
    path and query parameters are integers, and the body a handler takes is in its media type, readable, and
    strictly typed."""
    check_headers(request)
    check_path(request)
    check_query(request)
    body = _route(request.route_handler).body
    if body is None:
        return  # the handler takes no body; whatever was sent is ignored
    expected, annotation = body
    media_type, options = request.content_type
    charset = options.get("charset", "utf-8").lower()
    if media_type != expected or charset not in ("utf-8", "utf8"):
        detail = f"Send the body as {expected} (UTF-8)."
        raise problem(415, "unsupported-media-type", "Unsupported media type", detail, headers={"Accept-Post": expected})
    if expected != RequestEncodingType.JSON.value:
        return
    try:
        value = json.loads(await request.body(), object_pairs_hook=_unique)
        _depth(value, MAX_DEPTH)
    except RecursionError:
        raise _unreadable(f"The JSON is nested too deep (objects and arrays more than {MAX_DEPTH} deep).") from None
    except (ValueError, UnicodeDecodeError) as e:  # json's errors are ValueErrors
        raise _unreadable(f"The body is not valid JSON: {str(e)[:200]}.") from None
    try:
        msgspec.convert(value, type=annotation, strict=True)
    except msgspec.ValidationError as e:
        message, _, path = str(e).partition(" - at `$")
        error = field_error({"message": message[:200], "key": path.strip(".`")[:80]})
        raise problem(400, "malformed-request", "The request could not be read", error["detail"], errors=[error]) from None


def head_as_get(app: ASGIApp) -> ASGIApp:
    """Middleware: HEAD answers exactly as GET would, headers and status, without the body
    (RFC 9110, 9.3.2); litestar routes only the methods a handler declares."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await app({**scope, "method": "GET"}, receive, without_body)

    return middleware


class StrictStructs(StructSchemaPlugin):
    """The OpenAPI schema says what the gate enforces: a body struct that forbids unknown fields
    is an object with `additionalProperties: false` (litestar's own plugin leaves that out)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        return schema
