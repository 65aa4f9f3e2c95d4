"""HeadCappedParser: a request head unended past MAX_HEAD_BYTES is refused, and nothing else,
against aiohttp's own parser as a connection wraps it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from gateway.fastpath.refusals import MAX_HEAD_BYTES, HeadTooLarge, RedactingRequestHandler

pytestmark = pytest.mark.asyncio


async def _answer(_request: web.BaseRequest) -> web.StreamResponse:
    return web.Response()  # pragma: no cover - no transport: nothing is answered


def _parser() -> Any:
    loop = asyncio.get_running_loop()
    return RedactingRequestHandler(web.Server(_answer, loop=loop, max_line_size=8190), loop=loop)._parser


async def test_a_client_writing_line_by_line_is_never_refused() -> None:
    """2,000 requests on one keep-alive connection, each head written a line at a time (its
    blank line a read of its own, or split across two): all parsed. Counted only within a read,
    the blank line was missed and every request's bytes added up, refused after 32 KiB in all."""
    parser = _parser()
    parsed = 0
    for number in range(2000):
        head = b"GET /v1/training-jobs?offset=%d HTTP/1.1\r\nHost: gw\r\nX-Pad: %s\r\n\r\n" % (number, b"a" * 40)
        pieces = head.split(b"\r\n")  # the lines; the blank line's CRLF split over two reads below
        reads = [piece + b"\r\n" for piece in pieces[:-2]] + [b"\r", b"\n"]
        for read in reads:
            parsed += len(parser.feed_data(read)[0])
    assert parsed == 2000


async def test_an_unended_head_after_whole_requests_in_one_read_is_refused() -> None:
    """One read: a whole request, then the start of another head already past the bound: refused
    before it is fed (it was taken whole, 100 KB held, and only the next read refused)."""
    parser = _parser()
    lines = b"".join(b"X-%d: %s\r\n" % (number, b"a" * 1000) for number in range(40))
    with pytest.raises(HeadTooLarge):
        parser.feed_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n" + lines)
    assert len(lines) > MAX_HEAD_BYTES


async def test_a_head_within_the_bound_arriving_in_pieces_is_parsed() -> None:
    """A 30 KB head (the longest the request limits let through is about 29 KB) in 1 KB reads."""
    parser = _parser()
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (n, b"a" * 990) for n in range(30)) + b"\r\n"
    assert len(head) < MAX_HEAD_BYTES
    messages = [m for start in range(0, len(head), 1024) for m in parser.feed_data(head[start : start + 1024])[0]]
    assert len(messages) == 1
