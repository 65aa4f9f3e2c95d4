"""Request heads the hit path reads by itself, with llhttp (``httptools``), no aiohttp message.

aiohttp's parser turns each request into a ``RawRequestMessage`` with a multidict of headers
and a ``yarl.URL``: about a third of a cache hit's cost, for fields the hit path mostly does not
read. ``HeadReader.read`` (a connection's reader: ``PlainHeads.reader``) takes one complete
request head (request line to blank line, inclusive), parses it with llhttp (the parser
aiohttp's own C parser is built on, here through httptools' thin binding), and returns what a
plain hit needs, or ``None`` for anything outside this strict subset; the connection then hands
the request, with everything after it, to aiohttp, which judges it as it judges every request:

- at most ``MAX_PLAIN_HEAD_BYTES``, all ASCII (aiohttp would decode other bytes differently);
- a request line of exactly ``GET`` or ``HEAD``, one space, an origin-form target without
  ``#``, one space, ``HTTP/1.1``;
- the message ends with the head (no body) and keeps the connection open (no ``Connection:
  close``, no upgrade);
- ``Host`` is there (aiohttp refuses an HTTP/1.1 request without it), no header appears twice,
  and none of ``Content-Length``, ``Transfer-Encoding``, ``Upgrade``, ``Expect`` and
  ``Sec-WebSocket-Key1`` appears;
- within the request limits (``check_limits``: the chain answers a request over them with the
  error saying which).

Headers are read as aiohttp reads them: name case-insensitive, value without the whitespace
around it (decoded when asked for; ``Authorization`` and ``X-Request-Id``, read on every hit,
once per head). One parser serves every connection: each call feeds one whole head, so it is
between messages after every call, and it is replaced after any head it did not finish.

What a head reads as depends on its bytes alone, so the last ``HEADS_REMEMBERED`` heads up to
``MAX_REMEMBERED_HEAD_BYTES`` are remembered with what they read as (then all forgotten at
once): a client repeating a request sends the same bytes each time, and a head read before costs
one dictionary look-up instead of a parse (0.1 µs against 2.7 for a parse, where the rest of a
hit's Python takes about 5.5). A head that differs on every request (a per-request
``X-Request-Id``, ``traceparent`` or the like: ``PER_REQUEST_HEADERS``) is remembered without those
lines, as a skeleton: the next head that differs only in their values is read from it (about
2.3 µs: finding and checking those lines, then a look-up) instead of parsed. A skeleton keeps
the shape of the head it was made from: its bytes around the per-request values. Each
connection reads through its own ``HeadReader``, which keeps the shape of the last head it read
from a skeleton. A client sends the same head with new ids on every request, so its next head is
matched against that shape by comparing bytes before anything else (about 1.3 µs in all: no
lower-casing, cutting or look-up). A client whose head's skeleton was made from another
client's shape (the same headers, but names cased differently) is read from the skeleton each
time. A connection's reader also keeps the last head it read other than from a shape (up to
``MAX_LAST_HEAD_BYTES``) with what it read as: a client repeating its request on a keep-alive
connection sends the same bytes, which are compared (about 0.1 µs with the slice) instead of
hashed for the look-up (0.3-0.4 µs, the more the longer the token), and a head too long to be
remembered for every connection (a large token or cookies) is parsed once per connection instead
of on every request. Authentication is not remembered: the caller is decided afresh on every
request.
"""

from __future__ import annotations

import re
from typing import TypeVar, cast

import httptools

from gateway.admission.request_limits import MAX_HEADER_COUNT, MAX_TARGET_BYTES, check_limits, counted_header_bytes
from gateway.errors import InvalidRequest

MAX_PLAIN_HEAD_BYTES = 32768
HEADS_REMEMBERED = 512
MAX_REMEMBERED_HEAD_BYTES = 2048
"""At most 1 MiB of remembered heads (and as much of skeletons), however a client varies them."""
MAX_LAST_HEAD_BYTES = 8192
"""The longest head a connection keeps as its last one (a large token or cookies): at most 8 KiB
held per connection."""
PER_REQUEST_HEADERS = (b"x-request-id", b"traceparent", b"tracestate", b"baggage", b"sentry-trace")
"""Headers a client may send with a new value on every request (a request id; W3C trace context
and baggage; Sentry's trace, which instrumented pages send): a head is remembered without them."""

_METHODS = frozenset({b"GET", b"HEAD"})
_REFUSED = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"sec-websocket-key1"})
"""Headers whose head is never plain. ``Sec-WebSocket-Key1`` (hixie-76's handshake, whose body
has no length) is one aiohttp's parser refuses outright: a 400 from the chain."""
_WHITESPACE = b" \t"
_REQUEST_LINE_FRAME = len(b"  HTTP/1.1")
"""A request line's length beyond its method and target: two single spaces and the version."""
_UNREAD = object()
_PER_REQUEST_LINES = tuple((name, b"\r\n" + name + b":") for name in PER_REQUEST_HEADERS)
_PER_REQUEST_VALUE = re.compile(rb"[ \t]*([!-~]+)")
"""A per-request header's value taken out of a head: visible ASCII (what llhttp passes on as it
is), no whitespace inside or after."""


_PLAIN_STARTS = (b"GET /", b"HEAD /")
_MAX_PLAIN_REQUEST_LINE = len(b"HEAD ") + MAX_TARGET_BYTES + len(b" HTTP/1.1")
_NOT_IN_A_REQUEST_LINE = re.compile(rb"[^!-~ ]")
"""Anything but visible ASCII and spaces: a bare CR or LF, a tab, NUL, other bytes."""


def could_begin_plain_head(partial: bytes) -> bool:
    """Whether ``partial``, the start of a head not yet whole, can still become one read here:
    its request line, as far as it goes, is a plain one's (``GET /`` or ``HEAD /``, visible ASCII
    and spaces, within the target limit, and once whole ending in `` HTTP/1.1``). Only the request
    line is looked at, so a head sent a byte at a time costs at most its first 4 KiB a read. A
    connection offering anything else (a TLS handshake, an SSH banner, a bare-LF client, a
    lower-case method) hands its bytes to aiohttp's parser at once, which refuses them as they
    come, instead of waiting for a blank line that may never be sent."""
    line = partial[: _MAX_PLAIN_REQUEST_LINE + 2]
    end = line.find(b"\r\n")
    if end >= 0:
        line = line[:end]
    elif len(line) > _MAX_PLAIN_REQUEST_LINE + 1:
        return False
    else:
        line = line.removesuffix(b"\r")  # a CRLF split between two reads
    if not any(start.startswith(line[: len(start)]) for start in _PLAIN_STARTS):
        return False
    if _NOT_IN_A_REQUEST_LINE.search(line):
        return False
    return end < 0 or line.endswith(b" HTTP/1.1")


class PlainHead:
    """A request head as the hit path reads it (shared by every request that sends the same
    bytes: read-only)."""

    __slots__ = ("authorization", "conditional", "fields", "method", "path", "query", "request_id", "target", "variant")

    def __init__(self, method: str, target: str, fields: dict[bytes, bytes]) -> None:
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.fields = fields
        """Each header by lower-case name, its value as received (``header`` gives it as aiohttp
        does); one entry per header, as none appears twice."""
        self.authorization = self.header(b"authorization")
        self.request_id = self.header(b"x-request-id")
        """The ``X-Request-Id`` the caller sent, if any."""
        self.variant = (fields.get(b"accept-encoding"), fields.get(b"origin"))
        """``Accept-Encoding`` and ``Origin`` as received: which variant of an answer it gets."""
        self.conditional = b"if-none-match" in fields
        """Whether it sent ``If-None-Match`` (it may be answered 304)."""

    def header(self, name: bytes) -> str | None:
        """The value of the header with this lower-case ``name``, as aiohttp gives it."""
        value = self.fields.get(name)
        return None if value is None else value.strip(_WHITESPACE).decode()

    def with_fields(self, fields: dict[bytes, bytes]) -> PlainHead:
        """This head with ``fields`` instead (only per-request headers added or taken away)."""
        head = object.__new__(PlainHead)
        head.method, head.target, head.path, head.query = self.method, self.target, self.path, self.query
        head.authorization, head.variant, head.conditional = self.authorization, self.variant, self.conditional
        head.fields = fields
        head.request_id = head.header(b"x-request-id")
        return head


class HeadShape:
    """A head with per-request lines as the bytes around their values, and what it reads as
    without those lines (its skeleton's reading). The bytes run from the head's start through the
    first such line's colon, then from the end of each value through the next one's colon, then
    from the end of the last value to the head's end. Any head of these bytes around values of the
    same form reads as the skeleton plus those values: cut, it gives the same skeleton (each
    line's first occurrence is where it was, as the bytes before it are the same and a value holds
    no line break) and the same values. The bytes after the last value end with the blank line,
    so a head (which ends at its first blank line) that has them there ends with them."""

    __slots__ = ("_first", "_lines", "skeleton")

    def __init__(self, skeleton: PlainHead, head: bytes, cuts: _Cuts) -> None:
        self.skeleton = skeleton
        """What a head of this shape reads as, less its per-request headers."""
        starts = [0] + [end for _, _, end, _ in cuts]  # where each run of bytes around the values starts
        stops = [value_start for _, value_start, _, _ in cuts] + [len(head)]
        around = [head[start:stop] for start, stop in zip(starts, stops, strict=True)]
        self._first = around[0]
        self._lines = tuple(zip([name for *_, name in cuts], around[1:], strict=True))
        """Each per-request line's header, and the bytes after its value up to the next value (or the end)."""

    def read(self, head: bytes) -> PlainHead | None:
        """``head`` read from the skeleton if it has this shape (and is short enough to be read
        from one), else ``None``: it may still be a plain head of some other shape."""
        first = self._first
        if len(head) > MAX_REMEMBERED_HEAD_BYTES or not head.startswith(first):
            return None
        skeleton = self.skeleton
        fields = skeleton.fields.copy()
        position = len(first)
        for name, after in self._lines:
            end = head.find(b"\r\n", position)
            value = _PER_REQUEST_VALUE.fullmatch(head, position, end) if end >= 0 else None
            if value is None or not head.startswith(after, end):
                return None
            fields[name] = value[1]
            position = end + len(after)
        return skeleton.with_fields(fields)


class HeadReader:
    """One connection's reader of request heads (``PlainHeads.reader``): the heads every
    connection shares; the last head this one read other than from a shape, tried first; and the
    shape of the last head it read from a skeleton, tried next (see the module docstring)."""

    __slots__ = ("_heads", "_last_head", "_last_read", "_remembered", "_shape")

    def __init__(self, heads: PlainHeads) -> None:
        self._heads = heads
        self._remembered = heads._remembered  # the shared memo, one attribute away on every read
        self._shape: HeadShape | None = None
        self._last_head = b""
        """The last head this connection read that was not read from a shape (at most
        ``MAX_LAST_HEAD_BYTES``), and what it read as."""
        self._last_read: PlainHead | None = None

    def read(self, head: bytes) -> PlainHead | None:
        """``head`` (request line to blank line, inclusive) read as the module docstring says,
        or ``None``."""
        if head == self._last_head:
            return self._last_read
        shape = self._shape
        if shape is not None:
            plain = shape.read(head)
            if plain is not None:
                return plain
        known = self._remembered.get(head, _UNREAD)  # a sentinel: ``None`` (not a plain head) is remembered too
        if known is not _UNREAD:
            plain = cast("PlainHead | None", known)
        else:
            plain, shape = self._heads.read_new(head)
            if shape is not None:
                self._shape = shape
                return plain
            if len(head) > MAX_LAST_HEAD_BYTES:
                return plain
        self._last_head, self._last_read = head, plain
        return plain


class PlainHeads:
    """The heads read so far, and the parser, shared by every connection's ``HeadReader``."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._target = b""
        self._headers: dict[bytes, bytes] = {}
        self._fields = 0
        self._kept_alive = False
        self._remembered: dict[bytes, PlainHead | None] = {}
        self._skeletons: dict[bytes, HeadShape] = {}
        """Heads read before, without their per-request lines (see ``_per_request_lines``), with
        the shape of the head each was first read from."""

    def reader(self) -> HeadReader:
        """A reader for one connection."""
        return HeadReader(self)

    def read_new(self, head: bytes) -> tuple[PlainHead | None, HeadShape | None]:
        """A head that is not remembered, read; with the shape of its skeleton if it has
        per-request lines and was read from one or gave one."""
        if len(head) > MAX_PLAIN_HEAD_BYTES:
            return None, None
        if len(head) > MAX_REMEMBERED_HEAD_BYTES:
            return self._parse(head), None
        cut = _per_request_lines(head)
        if cut is None:
            plain = self._parse(head)
            _remember(self._remembered, head, plain)
            return plain, None
        skeleton_bytes, values, cuts = cut
        shape = self._skeletons.get(skeleton_bytes)
        if shape is not None and len(shape.skeleton.fields) + len(values) <= MAX_HEADER_COUNT:
            skeleton = shape.skeleton
            return skeleton.with_fields({**skeleton.fields, **values}), shape
        plain = self._parse(head)
        if plain is None:
            return None, None
        # the head without its per-request lines reads the same, less them
        skeleton = plain.with_fields({name: value for name, value in plain.fields.items() if name not in values})
        shape = HeadShape(skeleton, head, cuts)
        _remember(self._skeletons, skeleton_bytes, shape)
        return plain, shape

    def _parse(self, head: bytes) -> PlainHead | None:
        if not head.isascii():
            return None
        self._target, self._headers, self._fields, self._kept_alive = b"", {}, 0, False
        parser = self._parser
        try:
            parser.feed_data(head)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._parser = httptools.HttpRequestParser(self)
            return None
        if not self._kept_alive:  # a body follows, the head was cut short, or the connection closes
            self._parser = httptools.HttpRequestParser(self)
            return None
        method, target, headers = parser.get_method(), self._target, self._headers
        if (
            method not in _METHODS
            or parser.get_http_version() != "1.1"
            or head.find(b"\r\n") != len(method) + len(target) + _REQUEST_LINE_FRAME
            or target[:1] != b"/"
            or b"#" in target
            or len(headers) != self._fields
            or b"host" not in headers
            or not _REFUSED.isdisjoint(headers)
        ):
            return None
        decoded_target = target.decode()
        try:
            stripped = ((name, value.strip(_WHITESPACE)) for name, value in headers.items())
            check_limits(decoded_target, len(headers), counted_header_bytes(len(head), stripped))
        except InvalidRequest:
            return None
        return PlainHead(method.decode(), decoded_target, headers)

    # llhttp's callbacks
    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value
        self._fields += 1

    def on_message_complete(self) -> None:
        self._kept_alive = self._parser.should_keep_alive()


_Kept = TypeVar("_Kept")


def _remember(memo: dict[bytes, _Kept], head: bytes, plain: _Kept) -> None:
    if len(memo) >= HEADS_REMEMBERED:
        memo.clear()
    memo[head] = plain


_Cuts = list[tuple[int, int, int, bytes]]
"""Where a head's per-request lines are, in order: each one's start, its value's start and end,
and its header."""


def _per_request_lines(head: bytes) -> tuple[bytes, dict[bytes, bytes], _Cuts] | None:
    """``head`` without the first line of each of its ``PER_REQUEST_HEADERS``, their values as
    llhttp gives them, and where those lines are; ``None`` if it has none, or one whose value is
    not ``_PER_REQUEST_VALUE`` (then the whole head is parsed). A skeleton is remembered only
    from a head read as plain, which has no header twice and no folded line, so a remembered
    skeleton holds no per-request line and no fold: a head sending one twice, or folding one,
    finds no skeleton."""
    lowered = head.lower()
    cuts: _Cuts = []
    values: dict[bytes, bytes] = {}
    for name, line in _PER_REQUEST_LINES:
        start = lowered.find(line)
        if start < 0:
            continue
        value_start = start + len(line)
        end = lowered.find(b"\r\n", value_start)
        value = _PER_REQUEST_VALUE.fullmatch(head, value_start, end) if end >= 0 else None
        if value is None:
            return None
        values[name] = value[1]
        cuts.append((start, value_start, end, name))
    if not cuts:
        return None
    cuts.sort()
    pieces, kept_from = [], 0
    for start, _, end, _ in cuts:
        pieces.append(head[kept_from:start])
        kept_from = end
    pieces.append(head[kept_from:])
    return b"".join(pieces), values, cuts
