"""Request heads the hit path reads by itself, with llhttp (``httptools``), no aiohttp message.

aiohttp's parser turns each request into a ``RawRequestMessage`` with a multidict of headers
and a ``yarl.URL``: about a third of a cache hit's cost, for fields the hit path mostly does not
read. ``PlainHeads.read`` takes one complete request head (request line to blank line,
inclusive), parses it with llhttp (the parser aiohttp's own C parser is built on, here through
httptools' thin binding), and returns what a plain hit needs, or ``None`` for anything outside
this strict subset; the connection then hands the request, with everything after it, to aiohttp,
which judges it as it judges every request:

- at most ``MAX_PLAIN_HEAD_BYTES``, all ASCII (aiohttp would decode other bytes differently);
- a request line of exactly ``GET`` or ``HEAD``, one space, an origin-form target without
  ``#``, one space, ``HTTP/1.1``;
- the message ends with the head (no body) and keeps the connection open (no ``Connection:
  close``, no upgrade);
- ``Host`` is there (aiohttp refuses an HTTP/1.1 request without it), no header appears twice,
  and none of ``Content-Length``, ``Transfer-Encoding``, ``Upgrade`` and ``Expect`` appears;
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
``X-Request-Id`` or ``traceparent``: ``PER_REQUEST_HEADERS``) is remembered without those
lines, as a skeleton: the next head that differs only in their values is read from it (about
1.5 µs: finding and checking those lines) instead of parsed. Authentication is not remembered:
the caller is decided afresh on every request.
"""

from __future__ import annotations

import re
from typing import TypeVar, cast

import httptools

from gateway.admission.request_limits import MAX_HEADER_COUNT, check_limits, counted_header_bytes
from gateway.errors import InvalidRequest

MAX_PLAIN_HEAD_BYTES = 32768
HEADS_REMEMBERED = 512
MAX_REMEMBERED_HEAD_BYTES = 2048
"""At most 1 MiB of remembered heads (and as much of skeletons), however a client varies them."""
PER_REQUEST_HEADERS = (b"x-request-id", b"traceparent")
"""Headers a client may send with a new value on every request: a head is remembered without them."""

_METHODS = frozenset({b"GET", b"HEAD"})
_REFUSED = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})
_WHITESPACE = b" \t"
_REQUEST_LINE_FRAME = len(b"  HTTP/1.1")
"""A request line's length beyond its method and target: two single spaces and the version."""
_UNREAD = object()
_PER_REQUEST_LINES = tuple((name, b"\r\n" + name + b":") for name in PER_REQUEST_HEADERS)
_PER_REQUEST_VALUE = re.compile(rb"[ \t]*([!-~]+)")
"""A per-request header's value taken out of a head: visible ASCII (what llhttp passes on as it
is), no whitespace inside or after."""


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


class PlainHeads:
    """Reads whole request heads (see the module docstring)."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._target = b""
        self._headers: dict[bytes, bytes] = {}
        self._fields = 0
        self._kept_alive = False
        self._remembered: dict[bytes, PlainHead | None] = {}
        self._skeletons: dict[bytes, PlainHead] = {}
        """Heads read before, without their per-request lines (see ``_per_request_lines``)."""

    def read(self, head: bytes) -> PlainHead | None:
        """``head`` (request line to blank line, inclusive) read as above, or ``None``."""
        if len(head) > MAX_PLAIN_HEAD_BYTES:
            return None
        remembered = self._remembered
        known = remembered.get(head, _UNREAD)  # a sentinel: ``None`` (not a plain head) is remembered too
        if known is not _UNREAD:
            return cast("PlainHead | None", known)
        if len(head) > MAX_REMEMBERED_HEAD_BYTES:
            return self._parse(head)
        split = _per_request_lines(head)
        if split is None:
            plain = self._parse(head)
            _remember(remembered, head, plain)
            return plain
        skeleton, values = split
        known = self._skeletons.get(skeleton)
        if known is not None and len(known.fields) + len(values) <= MAX_HEADER_COUNT:
            return known.with_fields({**known.fields, **values})
        plain = self._parse(head)
        if plain is not None:  # the head without its per-request lines reads the same, less them
            fields = {name: value for name, value in plain.fields.items() if name not in values}
            _remember(self._skeletons, skeleton, plain.with_fields(fields))
        return plain

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


def _per_request_lines(head: bytes) -> tuple[bytes, dict[bytes, bytes]] | None:
    """``head`` without the first line of each of its ``PER_REQUEST_HEADERS``, and their values as
    llhttp gives them; ``None`` if it has none, or one whose value is not
    ``_PER_REQUEST_VALUE`` (then the whole head is parsed). A skeleton is remembered only
    from a head read as plain, which has no header twice and no folded line, so a remembered
    skeleton holds no per-request line and no fold: a head sending one twice, or folding
    one, finds no skeleton."""
    lowered = head.lower()
    cuts: list[tuple[int, int]] = []
    values: dict[bytes, bytes] = {}
    for name, line in _PER_REQUEST_LINES:
        start = lowered.find(line)
        if start < 0:
            continue
        end = lowered.find(b"\r\n", start + len(line))
        value = _PER_REQUEST_VALUE.fullmatch(head, start + len(line), end) if end >= 0 else None
        if value is None:
            return None
        values[name] = value[1]
        cuts.append((start, end))
    if not cuts:
        return None
    cuts.sort()
    pieces, kept_from = [], 0
    for start, end in cuts:
        pieces.append(head[kept_from:start])
        kept_from = end
    pieces.append(head[kept_from:])
    return b"".join(pieces), values
