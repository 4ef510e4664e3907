"""`agora serve`'s limits on what one client may hold, with real sockets: header size, header time, connections."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cli.limits import PIPELINED
from tests.conftest import SLUG
from tests.e2e.test_serve import Server

LIMITS = {"AGORA_MAX_HEADER_BYTES": "16384", "AGORA_HEADER_TIMEOUT_SECONDS": "1.5", "AGORA_BODY_TIMEOUT_SECONDS": "1.5", "AGORA_KEEP_ALIVE_SECONDS": "1", "AGORA_MAX_CONNECTIONS": "20"}
GET = f"GET /consultations/{SLUG} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One API process, so that its connection limit is the server's."""
    data = tmp_path_factory.mktemp("limits") / "var"
    data.mkdir()
    served = Server(data, "--workers", "1", extra=LIMITS)
    yield served
    served.interrupt()


@pytest.fixture
def connect(server: Server) -> Iterator[Callable[[], socket.socket]]:
    """Opens connections to the server, all closed after the test."""
    opened: list[socket.socket] = []

    def open_one() -> socket.socket:
        opened.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        return opened[-1]

    yield open_one
    for sock in opened:
        sock.close()


def answer(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


LOTS = 32 * 1024 * 1024  # what a flood would send if the server let it


def flood(sock: socket.socket, piece: bytes) -> int:
    """Send `piece` again and again, up to LOTS bytes or until the server closes the connection; how many bytes were sent."""
    sent = 0
    try:
        while sent < LOTS:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection while we were still sending
    return sent


def still_serving(server: Server) -> None:
    assert httpx.get(f"{server.url}/consultations/{SLUG}").status_code == 200


def test_a_32_mb_header_is_refused_with_431_long_before_it_is_read(server: Server, connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    sock.sendall(GET + b"X-Big: ")
    sent = flood(sock, b"a" * 65536)
    try:
        response = answer(sock)
    except ConnectionResetError:
        pytest.fail(f"the connection was reset without an answer after {sent} bytes")
    assert response.startswith(b"HTTP/1.1 431 ")
    assert b"limited to 16384 bytes" in response
    assert sent < LOTS  # refused while we were sending, not after
    still_serving(server)


def test_headers_just_under_the_limit_are_served(server: Server, connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    sock.sendall(GET + b"X-Big: " + b"a" * 15_000 + b"\r\nConnection: close\r\n\r\n")
    assert answer(sock).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("header", [b"X-Big: " + b"a" * 17_000 + b"\r\n", b"".join(b"X-%d: a\r\n" % i for i in range(3000))])
def test_headers_over_the_limit_in_one_write_are_refused_too(server: Server, connect: Callable[[], socket.socket], header: bytes) -> None:
    sock = connect()
    sock.sendall(GET + header + b"Connection: close\r\n\r\n")  # whole: the read that brings them also ends them
    assert answer(sock).startswith(b"HTTP/1.1 431 ")
    still_serving(server)


def test_headers_of_a_request_pipelined_behind_one_being_answered_are_counted_too(server: Server, connect: Callable[[], socket.socket]) -> None:
    """They arrive after the first request's headers ended, while its answer waits for the view (a tester sent 696 MB so)."""
    sock = connect()
    sock.sendall(f"GET /consultations/{SLUG}/stats?after=999999999 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() + GET)
    sent = flood(sock, (b"X-Pad: " + b"a" * 8000 + b"\r\n") * 8)
    assert b"HTTP/1.1 431 " in answer(sock)
    assert sent < LOTS
    still_serving(server)


@pytest.mark.parametrize("second", [b"X-Big: " + b"a" * 17_000 + b"\r\n\r\n", b"Connection: close\r\n\r\n"], ids=["too-large", "small"])
def test_requests_pipelined_in_one_write_are_each_held_to_the_limit(server: Server, connect: Callable[[], socket.socket], second: bytes) -> None:
    sock = connect()
    sock.sendall(GET + b"\r\n" + GET + second)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer(sock))  # a response follows the body before it directly
    assert statuses == [b"200", b"431" if second.startswith(b"X-Big") else b"200"]  # the first is answered before the second is refused


def test_a_pipelined_request_whose_blank_line_is_split_between_reads_is_served(server: Server, connect: Callable[[], socket.socket]) -> None:
    """Its body, 20 KB, must not be counted as headers (a reviewer's got 431)."""
    sock = connect()
    body = b'{"answers": {"familiarity": "read"}}' + b" " * 20_000
    post = f"POST /consultations/{SLUG}/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
    sock.sendall(GET + b"\r\n" + post + b"Content-Length: %d\r\nConnection: close\r\n\r" % len(body))
    time.sleep(0.3)
    sock.sendall(b"\n" + body)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer(sock)) == [b"200", b"201"]


def test_trailers_of_a_chunked_body_are_held_to_the_header_limit(server: Server, connect: Callable[[], socket.socket]) -> None:
    """24 KB of trailers: over the header limit (16 KiB), under the body's wire limit (64 + 16 KiB)."""
    sock = connect()
    sock.sendall(f"POST /consultations/{SLUG}/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    sock.sendall(b"2\r\n{}\r\n0\r\n" + b"".join(b"X-T%d: " % i + b"a" * 8000 + b"\r\n" for i in range(3)) + b"\r\n")
    assert answer(sock).startswith(b"HTTP/1.1 431 ")


def test_the_next_headers_are_timed_even_when_the_answer_came_before_the_body_was_read(server: Server, connect: Callable[[], socket.socket]) -> None:
    """A 401 is sent before the body is read; the header time limit must still start for the next request."""
    sock = connect()
    sock.sendall(f"POST /review/consultations/{SLUG}/claim-next HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n".encode())
    time.sleep(0.3)
    sock.sendall(b"{}")
    started = time.monotonic()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        sock.sendall(GET)
        for _ in range(40):
            time.sleep(0.1)
            sock.sendall(b"X-S: 1\r\n")
    assert time.monotonic() - started < 3
    assert b"HTTP/1.1 408 " in answer(sock)


POST = f"POST /consultations/{SLUG}/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()


def test_a_body_sent_slowly_is_dropped_with_408(server: Server, connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    sock.sendall(POST + b"Content-Length: 100\r\n\r\n")
    started = time.monotonic()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(40):  # a byte every 0.1 s: four seconds of trickle if the server waited
            sock.sendall(b" ")
            time.sleep(0.1)
    assert 1.4 < time.monotonic() - started < 3
    response = answer(sock)
    assert response.startswith(b"HTTP/1.1 408 ") and b"body-too-slow" in response
    still_serving(server)


def test_chunk_extensions_are_counted_against_the_body_limit(server: Server, connect: Callable[[], socket.socket]) -> None:
    """The parser skips them and the application never sees them: a tester's connection sent 6 GB in 15 s so."""
    sock = connect()
    sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n1;")
    sent = flood(sock, b"a" * 65536)
    assert b"HTTP/1.1 413 " in answer(sock)
    assert sent < LOTS
    still_serving(server)


SLOW = f"GET /consultations/{SLUG}/stats?after=999999999 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()  # waits for the view, then 503


def test_a_connection_with_too_many_requests_waiting_is_closed(server: Server, connect: Callable[[], socket.socket]) -> None:
    """A tester's 3,600 tiny requests pipelined in one read, never read back, held 8 MB a connection."""
    sock = connect()
    sock.sendall(SLOW + (GET + b"\r\n") * 200)
    started = time.monotonic()
    answers = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer(sock))
    assert len(answers) <= 1 + PIPELINED and time.monotonic() - started < 5
    still_serving(server)


def test_trailers_are_never_read_as_the_requests_headers(server: Server, connect: Callable[[], socket.socket]) -> None:
    """A tester's trailers gave a POST its Content-Type and Idempotency-Key (and, behind a proxy, its client address)."""
    sock = connect()
    body = b'{"answers": {"familiarity": "read"}}'
    sock.sendall(
        f"POST /consultations/{SLUG}/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        + b"%x\r\n" % len(body) + body + b"\r\n0\r\nContent-Type: application/json\r\nIdempotency-Key: trailer-key-0123456789ab\r\n\r\n"
    )
    response = answer(sock)
    assert not response.startswith(b"HTTP/1.1 201 "), response
    assert re.match(rb"HTTP/1\.1 4\d\d ", response), response


def test_a_request_pipelined_behind_a_slow_one_is_answered_in_its_turn(server: Server, connect: Callable[[], socket.socket]) -> None:
    """The header timer started for a third request while the second was served, and a 408 replaced its answer (a reviewer's)."""
    sock = connect()
    sock.sendall(GET + b"\r\n" + SLOW[:-2] + b"Connection: close\r\n\r\n")
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer(sock)) == [b"200", b"503"]


def test_a_post_pipelined_behind_a_slow_answer_is_read_in_its_turn(server: Server, connect: Callable[[], socket.socket]) -> None:
    """Its body timer started at its headers while it waited, and a 408 replaced the first request's answer (a tester's)."""
    sock = connect()
    body = b'{"answers": {"familiarity": "read"}}'
    sock.sendall(SLOW + POST + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    time.sleep(0.3)
    sock.sendall(body)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer(sock)) == [b"503", b"201"]


@pytest.mark.parametrize("request_", [
    POST + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",  # both framings: a smuggling attempt
    GET + b"X-Folded: a\r\n b\r\n\r\n",
    GET + b"Bad\x00Name: x\r\n\r\n",
    f"GET /consultations/{SLUG} HTTP/1.1\r\n\r\n".encode(),  # no Host: RFC 9112 says refuse it (an attacker's got a 200)
    GET + b"Host: elsewhere\r\n\r\n",  # two: which one is meant? (a tester's got a 200)
    POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n",  # not chunked last: no length to read the body by
    POST.replace(b"HTTP/1.1", b"HTTP/1.0") + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # RFC 9112, 6.1: faulty framing
], ids=["length-and-chunked", "folded-header", "nul-in-name", "no-host", "two-hosts", "chunked-not-last", "http-1.0-chunked"])
def test_a_request_the_parser_cannot_read_gets_a_problem(server: Server, connect: Callable[[], socket.socket], request_: bytes) -> None:
    sock = connect()
    sock.sendall(request_)
    response = answer(sock)
    assert response.startswith(b"HTTP/1.1 400 "), response
    assert b"content-type: application/problem+json" in response and b'"/problems/malformed-request"' in response


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"gzip\r\nTransfer-Encoding: chunked"])
def test_a_transfer_coding_the_server_does_not_apply_gets_501(server: Server, connect: Callable[[], socket.socket], coding: bytes) -> None:
    """A tester's `gzip, chunked` body was taken as plain JSON: the gzip coding was ignored, and the response recorded."""
    sock = connect()
    body = b'{"answers": {"familiarity": "read"}}'
    sock.sendall(POST + b"Transfer-Encoding: " + coding + b"\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    response = answer(sock)
    assert response.startswith(b"HTTP/1.1 501 ") and b'"/problems/transfer-coding-unsupported"' in response, response


def test_a_request_refused_behind_one_still_being_answered_is_refused_after_its_answer(server: Server, connect: Callable[[], socket.socket]) -> None:
    """A tester's pipelined POST got the refusal of the request behind it as its answer, and lost its receipt."""
    sock = connect()
    body = b'{"answers": {"familiarity": "read"}}'
    sock.sendall(POST + b"Content-Length: %d\r\n\r\n%s" % (len(body), body) + POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n")
    response = answer(sock)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", response) == [b"201", b"501"], response
    assert b'"receipt"' in response


def test_headers_sent_slowly_are_dropped_with_408(server: Server, connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    started = time.monotonic()
    sock.sendall(GET)
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(40):  # a byte every 0.1 s: four seconds of trickle if the server waited
            sock.sendall(b"X")
            time.sleep(0.1)
    assert 1.4 < time.monotonic() - started < 3
    assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_dropped_too(server: Server, connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    started = time.monotonic()
    assert answer(sock).startswith(b"HTTP/1.1 408 ")
    assert 1.4 < time.monotonic() - started < 3


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time(server: Server, connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    sock.sendall(GET + b"\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    rest = answer(sock)  # nothing more: just the close
    assert 0.9 < time.monotonic() - started < 2.5
    assert b"HTTP/1.1" not in rest


def test_connections_beyond_the_limit_are_refused_with_503_and_served_again_once_closed(server: Server, connect: Callable[[], socket.socket]) -> None:
    held = [connect() for _ in range(20)]
    try:
        time.sleep(0.2)
        extra = [connect() for _ in range(5)]
        for sock in extra:
            response = answer(sock)
            assert response.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in response
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    still_serving(server)


def sign_in_answers(server: Server, forwarded_for: list[str]) -> list[int]:
    return [
        httpx.post(f"{server.url}/staff/token", json={"email": "nobody@example.org", "password": "wrong password"}, headers={"X-Forwarded-For": ip}).status_code
        for ip in forwarded_for
    ]


def test_a_client_cannot_escape_the_rate_limits_by_naming_itself_anew(server: Server, tmp_path: Path) -> None:
    """Unless FORWARDED_ALLOW_IPS names a proxy, X-Forwarded-For is ignored: 11 sign-ins claiming
    11 addresses are one client's, over its limit of 10 a minute. Behind a proxy it tells clients apart."""
    addresses = [f"10.0.0.{i}" for i in range(11)]
    assert sign_in_answers(server, addresses)[-1] == 429
    data = tmp_path / "var"
    data.mkdir()
    proxied = Server(data, "--workers", "1", extra={"FORWARDED_ALLOW_IPS": "127.0.0.1"})
    try:
        assert set(sign_in_answers(proxied, addresses)) == {401}
    finally:
        proxied.interrupt()


def test_a_connection_closed_by_a_refusal_leaves_no_traceback_in_the_log(tmp_path: Path) -> None:
    """Closed while a request was being answered (a slow one, with more pipelined behind it), the connection
    was then written to by its answer: some 70 lines of traceback in the log each time (a tester's)."""
    data = tmp_path / "var"
    data.mkdir()
    own = Server(data, "--workers", "1", extra=LIMITS)  # of its own: its log is read whole once it stops
    try:
        body = b'{"answers": {"familiarity": "read"}}'.ljust(60_000)
        posts = (POST + b"Content-Length: %d\r\n\r\n" % len(body) + body) * 4  # the body limit passed: 413
        for pipelined in [posts, (GET + b"\r\n") * 200]:  # and too many requests waiting: closed
            with socket.create_connection(("127.0.0.1", own.port), timeout=10) as sock:
                sock.sendall(SLOW + pipelined)
                with contextlib.suppress(ConnectionResetError):  # the close may find the rest unread
                    answer(sock)
        still_serving(own)
    finally:
        output = own.interrupt()  # once the requests under way are done: what they logged is in it
    assert "Traceback" not in output, output
