"""The limits a server facing the Internet needs and uvicorn's HTTP/1.1 protocol lacks.

uvicorn (httptools) reads request headers of any size for as long as a client cares to send
them, and accepts any number of connections: a few slow or huge requests hold memory and
connections indefinitely. This protocol is uvicorn's, with limits added per process: headers
larger than `max_header_bytes` get 431 (a request's own, and those of any request pipelined behind
it, counted as they arrive); headers not complete `header_timeout` seconds after the connection
opened (or after the last response on it) get 408, and so does a body not complete
`body_timeout` seconds after its headers; a body whose bytes on the wire pass `max_body_bytes`
plus `max_header_bytes` (chunk framing, extensions and trailers, which the parser skips and the
application never sees) gets 413; a connection beyond `max_connections` gets 503 with
Retry-After; a request the parser cannot read, or one naming its Host twice (or, HTTP/1.1, not at all), gets 400, and
one with a transfer coding other than chunked gets 501 (400 if chunked is not its last). Each is a problem (RFC 9457) and closes the
connection; a request refused while those before it on the connection are still owed their answers is
refused after them, in its turn. A connection with more than PIPELINED requests waiting behind the one being answered
is closed, and a chunked body's trailers are counted but never taken as the request's headers. Once
the connection is closed, the request being answered and those queued behind it write nothing. The
keep-alive timeout between requests is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from runtime.settings import Settings

log = logging.getLogger("agora.limits")
# Requests one connection may have waiting behind the one being answered: each waiting one holds
# memory (uvicorn parses a whole read), so a client that never reads its answers is cut off here.
PIPELINED = 32


def refusal(status: int, name: str, title: str, detail: str, *headers: str) -> bytes:
    """A whole problem response that closes the connection, written before any request is read."""
    body = msgspec.json.encode({"type": f"/problems/{name}", "title": title, "status": status, "detail": detail})
    head = [f"HTTP/1.1 {status} {title}", "content-type: application/problem+json", f"content-length: {len(body)}", "connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Refused(Exception):
    """Raised in the parser's callbacks once refused (or closed): it stops the parser, so nothing more of the connection is read."""


class LimitedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on header size, header read time and connections."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = settings
        self.header_bytes = 0  # read so far of the headers of the request in progress
        self.body_bytes = 0  # read so far of its body, as sent: framing included
        self.tail = b""  # the last bytes of them, where the blank line ending them may have begun
        self.in_headers = True
        self.parsed_count = False  # whether the parser's callbacks count header bytes (see on_message_complete)
        self.timer: asyncio.TimerHandle | None = None  # for the headers in progress, or the body
        self.answering: RequestResponseCycle | None = None  # the request being answered; `cycle` is the one read last
        self.deferred: bytes | None = None  # a refusal waiting for the answers owed to the requests before it

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d open, the limit is %d", len(self.connections) - 1, self.limits.max_connections)
            self.refuse(refusal(503, "too-many-connections", "Service Unavailable", "Too many connections; try again shortly.", "retry-after: 1"))
            return
        self.expect_headers()
        self.start_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.deferred is not None:
            return  # refused: nothing more is read
        self.parsed_count = False
        if self.in_headers and not self.transport.is_closing():
            # Counted before parsing, up to the blank line that ends the headers: headers too large
            # never reach the application, even when one read holds them whole.
            seen = self.tail + data
            end = seen.find(b"\r\n\r\n")
            self.count(len(data) if end < 0 else end + 4 - len(self.tail))
            self.tail = seen[-3:]
            if self.transport.is_closing():
                return
        elif not self.in_headers and not self.transport.is_closing():
            self.body_bytes += len(data)  # a pipelined request's bytes in the same read count too: the allowance covers them
            if self.body_bytes > self.limits.max_body_bytes + self.limits.max_header_bytes:
                detail = f"Request bodies are limited to {self.limits.max_body_bytes} bytes."
                self.refuse_request(refusal(413, "body-too-large", "The request body is too large", detail))
                return
        super().data_received(data)
        if self.parsed_count and self.in_headers:  # the next request's headers began in this read
            self.tail = data[-3:]  # where the blank line ending them may have begun

    def on_url(self, url: bytes) -> None:
        if self.parsed_count:
            self.count(len(url), parsing=True)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.parsed_count or not self.in_headers:  # a pipelined request's, or a chunked body's trailers
            self.count(len(name) + len(value) + 4, parsing=True)
        if not self.in_headers:
            return  # trailers: counted, never read as the request's headers (uvicorn would add them: a key, a client address)
        self.hosts += name.lower() == b"host"
        if name.lower() == b"transfer-encoding":
            self.codings += [c.strip().lower() for c in value.split(b",")]
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if len(self.pipeline) >= PIPELINED:
            log.warning("closed a connection with more than %d requests pipelined behind the one being answered", PIPELINED)
            self.close()  # no answer can be written ahead of those still owed
            raise Refused
        if self.hosts > 1 or (not self.hosts and self.parser.get_http_version() == "1.1"):  # RFC 9112, 3.2: a server must refuse them
            self.refuse(refusal(400, "malformed-request", "Bad Request", "A request names its Host once (HTTP/1.1: exactly once)."))
            raise Refused
        # RFC 9112, 6.3 and 6.1: a body whose last coding is not chunked has no length to read (400); a coding
        # other than chunked, once, is one this server does not apply (501), where the parser ignored it.
        if self.codings and (self.codings[-1] != b"chunked" or self.parser.get_http_version() == "1.0"):  # 1.0 has no transfer codings
            self.refuse(refusal(400, "malformed-request", "Bad Request", "A Transfer-Encoding ends with chunked (HTTP/1.1), or a body has no length."))
            raise Refused
        if self.codings and self.codings != [b"chunked"]:
            detail = "Only the chunked transfer coding is supported, once: send the body as it is, chunked or with a Content-Length."
            self.refuse(refusal(501, "transfer-coding-unsupported", "Not Implemented", detail))
            raise Refused
        self.in_headers = self.parsed_count = False
        self.body_bytes = 0
        self.stop_timer()
        super().on_headers_complete()
        if not self.pipeline:  # being answered now; a request queued behind another is not read until its turn
            self.answering = self.cycle
            self.start_timer(self.limits.body_timeout_seconds, self.body_too_slow)

    def on_message_complete(self) -> None:
        self.stop_timer()
        super().on_message_complete()
        # The next request's headers begin here, perhaps pipelined behind this one while it is
        # answered: counted from here on, in this read as the parser finds them, in later reads before parsing.
        self.expect_headers()
        self.parsed_count = True
        if self.cycle.response_complete and not self.transport.is_closing():
            self.start_timer()  # answered before its body was read (a refusal): the next headers are due now

    def on_response_complete(self) -> None:
        if self.pipeline and not self.transport.is_closing():
            self.answering = self.pipeline[-1][0]  # the next request queued, which uvicorn starts now
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.deferred is not None and self.cycle.response_complete:  # every request before the refused one answered
            self.refuse(self.deferred)
            return
        if self.in_headers and self.cycle is not None and self.cycle.response_complete:
            self.start_timer()  # the client has its answers: the next request's headers are due (not while one queued is served)
        elif not self.pipeline and self.timer is None:
            self.start_timer(self.limits.body_timeout_seconds, self.body_too_slow)  # the request queued behind it is read now

    def expect_headers(self) -> None:
        self.in_headers, self.header_bytes, self.tail, self.hosts, self.codings = True, 0, b"", 0, []

    def count(self, n: int, parsing: bool = False) -> None:
        """Count `n` bytes of headers; over the limit, refuse (and, from the parser's callbacks, stop it)."""
        self.header_bytes += n
        if self.header_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            too_large = refusal(431, "headers-too-large", "Request Header Fields Too Large", f"Request headers are limited to {self.limits.max_header_bytes} bytes.")
            # A body's trailers: its request's answer may be under way (written whole, or cut short).
            (self.refuse if self.in_headers else self.refuse_request)(too_large)
            if parsing:
                raise Refused  # nothing more of this connection is read

    def send_400_response(self, msg: str) -> None:
        """A request the parser cannot read (bad framing, a malformed header), as a problem like every refusal."""
        if not self.transport.is_closing() and self.deferred is None:  # else refused already (Refused), with a problem of our own
            self.refuse(refusal(400, "malformed-request", "Bad Request", "The request is not well-formed HTTP/1.1: its framing or a header could not be read."))

    def start_timer(self, seconds: float | None = None, then: Any = None) -> None:
        """Refuse by `then` in `seconds` (default: the headers', in `header_timeout`), unless stopped first."""
        self.stop_timer()
        self.timer = self.loop.call_later(seconds or self.limits.header_timeout_seconds, then or self.headers_too_slow)

    def headers_too_slow(self) -> None:
        self.timer = None
        if self.in_headers and not self.transport.is_closing():
            self.refuse(refusal(408, "headers-too-slow", "Request Timeout", f"Request headers must arrive within {self.limits.header_timeout_seconds:g} seconds."))

    def body_too_slow(self) -> None:
        self.timer = None
        if not self.in_headers and not self.transport.is_closing():
            detail = f"A request's body must arrive within {self.limits.body_timeout_seconds:g} seconds of its headers."
            self.refuse_request(refusal(408, "body-too-slow", "Request Timeout", detail))

    def refuse_request(self, response: bytes) -> None:
        """Refuse the request whose body is being read: with `response` unless the application has begun
        its own (say, a refusal before reading the body), which is then cut short."""
        if self.cycle is not None and self.cycle.response_started:
            self.close()
        else:
            self.refuse(response)

    def refuse(self, response: bytes) -> None:
        """Answer `response` and close. A request refused while those before it on the connection are still
        owed their answers is answered after them: written at once, the client took the refusal for the answer
        to its earlier request (a tester's lost receipt of a response recorded all the same)."""
        if self.in_headers and self.cycle is not None and not self.cycle.response_complete:
            self.deferred = response
            self.stop_timer()
            self.transport.pause_reading()
            return
        self.deferred = None
        self.transport.write(response)
        self.close()

    def close(self) -> None:
        """Close the connection: the request being answered is told the client is gone, those queued behind it are dropped.

        uvicorn tells only the request read last (see connection_lost), perhaps one queued: the one being
        answered would then write its answer to the closed transport, a RuntimeError logged as some 70
        lines of traceback, as often as a client cares to provoke it.
        """
        self.stop_timer()
        if self.answering is not None:
            self.answering.disconnected = True  # its answer is dropped (see RequestResponseCycle.send)
            self.answering.message_event.set()  # and a wait for more of its body ends
        self.pipeline.clear()  # never started once closed (see on_response_complete): their bodies are freed now
        self.transport.close()

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def protocol(settings: Settings) -> Any:
    """For uvicorn.Config(http=...): the limited protocol with the deployment's limits."""
    return functools.partial(LimitedHttp, settings=settings)
