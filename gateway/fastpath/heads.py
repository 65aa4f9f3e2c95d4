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
around it (decoded only when asked for). One parser serves every connection: each call feeds one whole head, so it is
between messages after every call, and it is replaced after any head it did not finish.

What a head reads as depends on its bytes alone, so the last ``HEADS_REMEMBERED`` heads up to
``MAX_REMEMBERED_HEAD_BYTES`` are remembered with what they read as (then all forgotten at
once): a client repeating a request sends the same bytes each time, and a head read before costs
one dictionary look-up instead of a parse (0.1 µs against 2.7 for a parse, where the rest of a
hit's Python takes about 5.5). A head that differs on every request (a per-request
``X-Request-Id`` or ``traceparent``) is parsed each time. Authentication is not remembered: the
caller is decided afresh on every request.
"""

from __future__ import annotations

import httptools

from gateway.admission.request_limits import MAX_HEADER_BYTES, check_limits, header_bytes
from gateway.errors import InvalidRequest

MAX_PLAIN_HEAD_BYTES = 32768
HEADS_REMEMBERED = 512
MAX_REMEMBERED_HEAD_BYTES = 2048
"""At most 1 MiB of remembered heads, however a client varies them."""

_METHODS = frozenset({b"GET", b"HEAD"})
_REFUSED = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})
_WHITESPACE = b" \t"
_REQUEST_LINE_FRAME = len(b"  HTTP/1.1")
"""A request line's length beyond its method and target: two single spaces and the version."""


class PlainHead:
    """A request head as the hit path reads it (shared by every request that sends the same
    bytes: read-only)."""

    __slots__ = ("authorization", "fields", "method", "path", "query", "request_id", "target")

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

    def header(self, name: bytes) -> str | None:
        """The value of the header with this lower-case ``name``, as aiohttp gives it."""
        value = self.fields.get(name)
        return None if value is None else value.strip(_WHITESPACE).decode()


class PlainHeads:
    """Reads whole request heads (see the module docstring)."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._target = b""
        self._headers: dict[bytes, bytes] = {}
        self._fields = 0
        self._kept_alive = False
        self._remembered: dict[bytes, PlainHead | None] = {}

    def read(self, head: bytes) -> PlainHead | None:
        """``head`` (request line to blank line, inclusive) read as above, or ``None``."""
        if len(head) > MAX_PLAIN_HEAD_BYTES:
            return None
        remembered = self._remembered
        if head in remembered:  # a second look-up, but no KeyError raised for every new head
            return remembered[head]
        plain = self._parse(head)
        if len(head) <= MAX_REMEMBERED_HEAD_BYTES:
            if len(remembered) >= HEADS_REMEMBERED:
                remembered.clear()
            remembered[head] = plain
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
            check_limits(decoded_target, len(headers), _counted_bytes(head, headers))
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


def _counted_bytes(head: bytes, headers: dict[bytes, bytes]) -> int:
    """The header bytes ``check_limits`` limits (names and values, ``Authorization`` not
    counted); for a head shorter than that limit, the head's length: within it either way."""
    if len(head) <= MAX_HEADER_BYTES:
        return len(head)
    return header_bytes((name, value.strip(_WHITESPACE)) for name, value in headers.items())
