"""Request heads read on the hit path (``gateway.fastpath.heads``): a strict subset of what
aiohttp's own parser reads, read the same way.

Whatever a ``HeadReader`` accepts, the server's aiohttp parser (built exactly as the gateway's
connections build it) accepts too, as a bodyless keep-alive HTTP/1.1 GET or HEAD with the same
target and header values. Anything else is left to aiohttp, which judges it as it judges every
request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http import HttpProcessingError, HttpVersion11
from aiohttp.streams import EMPTY_PAYLOAD
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.admission.request_limits import MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_TARGET_BYTES
from gateway.app import MAX_FIELD_SIZE, MAX_LINE_SIZE
from gateway.fastpath.heads import (
    HEADS_REMEMBERED,
    MAX_LAST_HEAD_BYTES,
    MAX_PLAIN_HEAD_BYTES,
    MAX_REMEMBERED_HEAD_BYTES,
    PlainHeads,
    could_begin_plain_head,
)

HEAD = (
    b"GET /v1/training-jobs?limit=10 HTTP/1.1\r\n"
    b"Host: gateway.internal\r\n"
    b"authorization:  Bearer key-1 \t\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"X-Request-Id: abc\r\n"
    b"\r\n"
)
READ = (b"authorization", b"accept-encoding", b"origin", b"if-none-match", b"x-request-id", b"host")


def test_a_plain_head_is_read_as_aiohttp_reads_it() -> None:
    head = PlainHeads().reader().read(HEAD)
    assert head is not None
    assert (head.method, head.target, len(head.fields)) == ("GET", "/v1/training-jobs?limit=10", 4)
    assert (head.path, head.query) == ("/v1/training-jobs", "limit=10")
    assert head.authorization == head.header(b"authorization") == "Bearer key-1"  # whitespace around dropped
    assert head.request_id == "abc"
    assert head.header(b"accept-encoding") == "gzip"  # names are case-insensitive
    assert head.header(b"origin") is None


def test_the_request_limits_count_header_bytes_without_authorization_as_the_chain_does() -> None:
    """A 20 KB token is within the limits (the credential has its own bound); 20 KB of another
    header is not, and is left to the chain, which answers with the error saying so."""
    long = "t" * 20_000
    heads = PlainHeads().reader()
    read = heads.read(f"HEAD /v1/training-jobs HTTP/1.1\r\nAuthorization: Bearer {long}\r\nHost: h\r\n\r\n".encode())
    assert read is not None and read.method == "HEAD"
    assert heads.read(f"GET /v1/training-jobs HTTP/1.1\r\nX-Pad: {long}\r\nHost: h\r\n\r\n".encode()) is None
    many = "".join(f"X-{n}: v\r\n" for n in range(MAX_HEADER_COUNT))
    assert heads.read(f"GET /v1/training-jobs HTTP/1.1\r\n{many}Host: h\r\n\r\n".encode()) is None
    assert heads.read(f"GET /v1/training-jobs?q={'a' * MAX_TARGET_BYTES} HTTP/1.1\r\nHost: h\r\n\r\n".encode()) is None


def test_a_head_sent_again_reads_the_same_and_the_remembered_heads_stay_bounded() -> None:
    heads = PlainHeads()
    reader = heads.reader()
    untraced = HEAD.replace(b"X-Request-Id: abc\r\n", b"")
    first, again = reader.read(untraced), reader.read(bytes(untraced))
    assert first is not None and again is first
    refused = untraced.replace(b"GET", b"POST")
    assert reader.read(refused) is None and reader.read(bytes(refused)) is None
    for number in range(HEADS_REMEMBERED * 3):
        read = reader.read(untraced.replace(b"gzip", b"gzip-%d" % number))
        assert read is not None and read.header(b"accept-encoding") == f"gzip-{number}"
        assert len(heads._remembered) <= HEADS_REMEMBERED
    oversized = untraced.replace(b"gzip", b"a" * MAX_REMEMBERED_HEAD_BYTES)
    heads._remembered.clear()
    assert reader.read(oversized) is not None and not heads._remembered


def test_a_connection_repeating_a_head_too_long_to_remember_for_all_parses_it_once() -> None:
    """A head with a large token (longer than the heads every connection shares) sent again on
    the same connection is read from that connection's last head: parsed once per connection, as
    it reads; one longer than a connection keeps is parsed every time."""
    heads = PlainHeads()
    parsed: list[bytes] = []
    parse = heads._parse
    heads._parse = lambda head: parsed.append(head) or parse(head)  # type: ignore[method-assign]
    token = "t" * (MAX_REMEMBERED_HEAD_BYTES * 2)
    large = f"GET /v1/training-jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    first, second = heads.reader(), heads.reader()
    for _ in range(3):
        for reader in (first, second):
            read = reader.read(large[:1] + large[1:])  # a new bytes object, as each request's is
            assert read is not None and read.authorization == f"Bearer {token}"
    assert len(parsed) == 2 and not heads._remembered
    too_long = large.replace(token.encode(), b"t" * MAX_LAST_HEAD_BYTES)
    for _ in range(3):
        assert first.read(too_long) is not None
    assert len(parsed) == 5


def test_a_page_instrumented_by_sentry_or_opentelemetry_has_its_head_parsed_once() -> None:
    """A browser page whose calls carry a new sentry-trace, tracestate and baggage each (the
    headers the CORS preflight approves for such pages): parsed once, then read from its shape,
    rather than parsed anew each request and churning the memo of heads."""
    heads = PlainHeads()
    reader = heads.reader()
    parsed: list[bytes] = []
    parse = heads._parse
    heads._parse = lambda head: parsed.append(head) or parse(head)  # type: ignore[method-assign]
    for number in range(50):
        traced = (
            f"Host: gateway.internal\r\nsentry-trace: {number:032x}-{number:016x}-1\r\n"
            f"tracestate: vendor=v{number}\r\nbaggage: sentry-trace_id={number:032x}\r\n"
        ).encode()
        read = reader.read(HEAD.replace(b"abc", b"req-%d" % number).replace(b"Host: gateway.internal\r\n", traced))
        assert read is not None and read.header(b"tracestate") == f"vendor=v{number}"
        assert (read.request_id, read.authorization) == (f"req-{number}", "Bearer key-1")
    assert len(parsed) == 1


def test_a_traced_client_that_sends_new_ids_on_each_request_has_its_head_parsed_once() -> None:
    """A new X-Request-Id and traceparent on every request, over three connections in turn: the
    head is parsed once, and every later one is read from it, with its own ids (the first on
    each other connection through the shared skeleton, the next ones through the connection's
    shape)."""
    heads = PlainHeads()
    connections = [heads.reader() for _ in range(3)]
    parsed: list[bytes] = []
    parse = heads._parse
    heads._parse = lambda head: parsed.append(head) or parse(head)  # type: ignore[method-assign]
    for number in range(200):
        parent = f"00-{number:032x}-{number:016x}-01"
        traced = f"Host: gateway.internal\r\ntraceparent: {parent}\r\n".encode()  # before the request id
        raw = HEAD.replace(b"abc", b"req-%d" % number).replace(b"Host: gateway.internal\r\n", traced)
        read = connections[number % 3].read(raw)
        assert read is not None and (read.request_id, read.header(b"traceparent")) == (f"req-{number}", parent)
        assert (read.authorization, read.header(b"host"), len(read.fields)) == ("Bearer key-1", "gateway.internal", 5)
    assert len(parsed) == 1
    reader = connections[0]
    many = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADER_COUNT - 3))
    full = HEAD.replace(b"Accept-Encoding: gzip\r\n", many)  # the limit, with its X-Request-Id
    assert reader.read(full) is not None
    over = full.replace(b"\r\n\r\n", b"\r\ntraceparent: 00-1-2-01\r\n\r\n")
    assert reader.read(over) is None  # one header more than the limit, though its skeleton is known
    for number in range(HEADS_REMEMBERED * 3):  # skeletons are bounded like heads
        assert reader.read(HEAD.replace(b"gzip", b"gzip-%d" % number)) is not None
        assert len(heads._skeletons) <= HEADS_REMEMBERED


TRACED = (
    b"GET /v1/training-jobs?limit=10 HTTP/1.1\r\n"
    b"Host: gateway.internal\r\n"
    b"X-Request-Id: abc\r\n"
    b"authorization:  Bearer key-1 \t\r\n"
    b"traceparent: 00-1-2-01\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"\r\n"
)


@pytest.mark.parametrize(
    "resent",
    [
        TRACED.replace(b"abc", b"a-longer-id").replace(b"00-1-2-01", b"00-3-4-01"),
        TRACED.replace(b"limit=10", b"limit=20"),
        TRACED.replace(b"key-1", b"key-2"),
        TRACED.replace(b"gzip", b"gzap"),
        TRACED.replace(b"gzip", b"br"),
        TRACED.replace(b"X-Request-Id", b"x-request-id"),
        TRACED.replace(b"abc", b"a b"),
        TRACED.replace(b"00-1-2-01", b"00-1-2-01\r\nOrigin: https://app"),
        TRACED.replace(b"gzip\r\n", b"gzip\r\nX-Request-Id: again\r\n"),
        TRACED.replace(b"abc", b"x" * MAX_HEADER_BYTES),
    ],
    ids=["new-ids", "before", "between", "after", "shorter", "name-case", "spaced-id", "added", "twice", "over-limit"],
)
def test_a_connection_reads_its_next_head_as_a_fresh_reader_would_whatever_changed(resent: bytes) -> None:
    """A connection's reader keeps the shape of its last traced head; the next head reads as a
    fresh reader reads it, whether it differs only in the ids' values or anywhere else."""
    reader = PlainHeads().reader()
    assert reader.read(TRACED) is not None and reader.read(TRACED.replace(b"abc", b"def")) is not None
    fresh, read = PlainHeads().reader().read(resent), reader.read(resent)
    assert (fresh is None) == (read is None)
    if fresh is not None and read is not None:
        assert (read.method, read.target, read.fields, read.request_id) == (
            fresh.method,
            fresh.target,
            fresh.fields,
            fresh.request_id,
        )


@pytest.mark.parametrize(
    "head",
    [
        HEAD.replace(b"HTTP/1.1", b"HTTP/1.0"),
        HEAD.replace(b"GET", b"POST"),
        HEAD.replace(b"GET", b"get"),
        HEAD.replace(b"GET ", b"GET  "),
        HEAD.replace(b"GET ", b"GET\t"),
        HEAD.replace(b"/v1/training-jobs", b"http://elsewhere/v1/training-jobs"),
        HEAD.replace(b"limit=10", b"limit=10#top"),
        HEAD.replace(b"Host: gateway.internal\r\n", b""),
        HEAD.replace(b"Host: gateway.internal\r\n", b"Connection: close\r\n"),
        HEAD.replace(b"Host: gateway.internal\r\n", b"Connection: upgrade\r\nUpgrade: websocket\r\n"),
        HEAD.replace(b"Host: gateway.internal\r\n", b"Content-Length: 0\r\n"),
        HEAD.replace(b"Host: gateway.internal\r\n", b"Transfer-Encoding: chunked\r\n"),
        HEAD.replace(b"Host: gateway.internal\r\n", b"Expect: 100-continue\r\n"),
        HEAD.replace(b"X-Request-Id: abc\r\n", b"x-request-id: abc\r\nX-Request-Id: def\r\n"),
        HEAD.replace(b"X-Request-Id: abc\r\n", b"X-Request-Id: abc\r\n def\r\n"),
        HEAD.replace(b"X-Request-Id:", b"X-Request-Id :"),
        HEAD.replace(b"abc", "caf\u00e9".encode()),
        HEAD.replace(b"\r\n", b"\n"),
        HEAD[:-2],
        HEAD.replace(b"abc", b"a" * MAX_PLAIN_HEAD_BYTES),
    ],
    ids=[
        "http-1.0",
        "post",
        "lower-case-method",
        "two-spaces",
        "tab-separator",
        "absolute-form",
        "fragment",
        "no-host",
        "connection-close",
        "upgrade",
        "content-length",
        "chunked",
        "expect",
        "duplicate-header",
        "obs-fold",
        "space-before-colon",
        "non-ascii",
        "bare-lf",
        "cut-short",
        "too-long",
    ],
)
def test_anything_outside_the_subset_is_left_to_aiohttp(head: bytes) -> None:
    reader = PlainHeads().reader()
    assert reader.read(head) is None
    assert reader.read(HEAD) is not None  # and the next head is read as usual
    assert reader.read(head) is None  # and a refused head sent again is refused again


@pytest.fixture(scope="module")
def aiohttp_parser() -> Iterator[Any]:
    """A parser as the gateway's connections make it (the server's handler arguments)."""
    loop = asyncio.new_event_loop()

    async def never(_request: web.BaseRequest) -> web.StreamResponse:  # pragma: no cover - no transport
        raise AssertionError

    server = web.Server(never, loop=loop, max_line_size=MAX_LINE_SIZE, max_field_size=MAX_FIELD_SIZE)
    connection: Any = web.RequestHandler(server, loop=loop)
    yield lambda: type(connection._parser)(
        connection,
        loop,
        2**16,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
    )
    loop.close()


TRICKY = [b" ", b"\t", b"\r", b"\n", b"\r\n", b":", b"#", b"\x00", b"\x7f", b"\xe9", b"A", b"/", b"?", b"1", b","]
TRICKY += [b"Connection: close\r\n", b"Connection: upgrade\r\n", b"Connection: keep-alive, TE\r\n", b"HTTP/1.0"]
TRICKY += [b"Content-Length: 1\r\n", b"Transfer-Encoding: chunked\r\n", b"Expect: 100-continue\r\n"]
TRICKY += [b"Upgrade: h2c\r\n", b"Host: x\r\n", b"X-Request-Id: y\r\n", b"Authorization: Bearer z\r\n"]
TRICKY += [b"Sec-WebSocket-Key1: k\r\n"]


REMEMBERING = PlainHeads().reader()
"""One reader for every example: what it remembers (and the shape of the last head it read
from a skeleton) must never change what a head reads as."""


@st.composite
def mutated_heads(draw: st.DrawFn) -> bytes:
    """``HEAD`` with a few bytes inserted, replaced or deleted, cut after its first blank line
    (as the connection cuts heads)."""
    head = HEAD
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(head) - 1))
        piece = draw(st.sampled_from(TRICKY))
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        if kind == "insert":
            head = head[:at] + piece + head[at:]
        elif kind == "replace":
            head = head[:at] + piece + head[at + len(piece) :]
        else:
            head = head[:at] + head[at + 1 :]
    end = head.find(b"\r\n\r\n")
    return head if end < 0 else head[: end + 4]


@settings(max_examples=1500, deadline=None)
@given(head=mutated_heads())
def test_whatever_is_read_here_aiohttp_reads_the_same_way(aiohttp_parser: Any, head: bytes) -> None:
    plain = PlainHeads().reader().read(head)
    remembered = REMEMBERING.read(head)  # read before, or after thousands of other heads
    again = REMEMBERING.read(head[:1] + head[1:])  # sent again on that connection: its last head, or its shape
    assert (remembered is None) == (plain is None) == (again is None)
    if plain is None:
        return
    assert remembered is not None and again is not None
    assert (remembered.method, remembered.target, remembered.fields) == (plain.method, plain.target, plain.fields)
    assert (again.method, again.target, again.fields) == (plain.method, plain.target, plain.fields)
    # Arriving in pieces, it is held until whole: no start of it is handed to aiohttp early.
    assert all(could_begin_plain_head(head[:cut]) for cut in range(len(head)))
    try:
        messages, upgraded, _ = aiohttp_parser().feed_data(head)
    except HttpProcessingError as exc:
        raise AssertionError(f"read here, refused by aiohttp: {head!r}") from exc
    assert len(messages) == 1 and not upgraded
    message, payload = messages[0]
    assert payload is EMPTY_PAYLOAD
    assert (message.method, message.path, message.version) == (plain.method, plain.target, HttpVersion11)
    assert not message.should_close and not message.upgrade
    assert len(message.raw_headers) == len(plain.fields)
    for name in READ:
        assert message.headers.get(name.decode()) == plain.header(name), name


ID_VALUES = [b"abc", b" spaced", b"\tt", b"a b", b"trailing ", b"", b"caf\xc3\xa9", b"x" * 300, b"a,b", b"a\x00"]
ID_VALUES += [b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b"a:b/c+d=e.f_g-h", b"\x7f"]
ID_VALUES += [b"y" * (MAX_REMEMBERED_HEAD_BYTES + 1), b"z" * MAX_HEADER_BYTES]  # past a skeleton's reach, the limit
ID_NAMES = [b"X-Request-Id", b"x-request-id", b"TRACEPARENT", b"traceparent"]
ID_LINES = st.tuples(st.sampled_from(ID_NAMES), st.sampled_from(ID_VALUES))


@settings(max_examples=600, deadline=None)
@given(
    head=mutated_heads(),
    variants=st.lists(st.lists(st.tuples(ID_LINES, st.integers(0, 8)), max_size=3), min_size=2, max_size=4),
    resent=st.lists(st.sampled_from(ID_VALUES), min_size=3, max_size=3),
)
def test_heads_read_from_a_skeleton_read_as_a_fresh_parse_reads_them(
    head: bytes, variants: Any, resent: list[bytes]
) -> None:
    """The same head sent with per-request headers of any value (well-formed or not, once or
    twice, anywhere among the headers), each variant sent again with other values in the same
    lines, reads through one remembering connection's reader exactly as a fresh reader reads it."""
    reader = PlainHeads().reader()
    base = head.replace(b"X-Request-Id: abc\r\n", b"")
    line_ends = [at + 2 for at in range(len(base)) if base.startswith(b"\r\n", at)][:-1] or [len(base)]
    for lines in variants:
        for values in ([value for (_, value), _ in lines], resent):
            variant = base
            for ((name, _), where), value in zip(lines, values, strict=False):
                at = line_ends[where % len(line_ends)]
                variant = variant[:at] + b"%s: %s\r\n" % (name, value) + variant[at:]
            fresh, read = PlainHeads().reader().read(variant), reader.read(variant)
            assert (fresh is None) == (read is None), variant
            if fresh is not None and read is not None:
                assert (read.method, read.target, read.fields) == (fresh.method, fresh.target, fresh.fields), variant
                assert (read.request_id, read.authorization) == (fresh.request_id, fresh.authorization), variant
