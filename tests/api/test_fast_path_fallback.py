"""The fast hit path fails closed (``gateway.fastpath.protocol``).

If an aiohttp internal the connection relies on is missing, the gateway serves with stock
aiohttp: every request through the handler chain, one warning naming what is missing, and
``metastudio_gateway_fast_path_enabled`` at 0. A malformed request in a pipelined batch costs
only itself and what follows it: the requests before it are answered, then a 400, then the
connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway.fastpath.protocol import missing_internals
from tests.api.conftest import ACME, ACME_KEY, Gateway, GatewayFactory
from tests.api.test_hit_path import RawResponse, chain_responses, connect, http_request, read_response

pytestmark = pytest.mark.asyncio

HIT = "/v1/training-jobs?limit=5"
MISS = "/v1/training-jobs?limit=6"
ENABLED = "metastudio_gateway_fast_path_enabled"
WAIT = 5.0
"""Seconds any one read may take: nothing here may hang."""


class HandlerWithoutForceClose(web.RequestHandler):
    """aiohttp's connection as a later version might have it: no ``_force_close`` flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self._force_close


class HandlerWithAnotherLogAccess(web.RequestHandler):
    """A connection whose ``log_access`` takes other arguments."""

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse) -> None:  # type: ignore[override]
        """Stands in for a changed signature."""


class HandlerParsingElsewhere(web.RequestHandler):
    """A connection whose ``data_received`` no longer goes through ``_parser.feed_data``."""

    def data_received(self, data: bytes) -> None:
        """Stands in for a parser moved out of the protocol."""


class HandlerWithoutKeepaliveCheck(web.RequestHandler):
    """A connection whose keep-alive timer no longer calls ``_process_keepalive``."""

    _process_keepalive = None  # type: ignore[assignment]


class HandlerShuttingDownAtOnce(web.RequestHandler):
    """A connection whose ``shutdown`` takes no timeout."""

    async def shutdown(self) -> None:  # type: ignore[override]
        """Stands in for a changed signature."""


class HandlerWithAnotherHandleError(web.RequestHandler):
    """A connection whose ``handle_error`` takes other arguments."""

    def handle_error(self, request: web.BaseRequest, status: int = 500) -> web.StreamResponse:  # type: ignore[override]
        """Stands in for a changed signature."""
        return super().handle_error(request, status)


class ServerWithoutKwargs(web.Server):
    """A server that no longer keeps the handler arguments in ``_kwargs``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self._kwargs


async def read_all(gateway: Gateway, payload: bytes, count: int) -> tuple[list[RawResponse], bytes]:
    """Send ``payload`` in one write; read ``count`` responses, then whatever comes before EOF."""
    reader, writer = await connect(gateway)
    writer.write(payload)
    try:
        responses = [await asyncio.wait_for(read_response(reader), WAIT) for _ in range(count)]
        rest = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    return responses, rest


async def still_serves(gateway: Gateway) -> None:
    response = await asyncio.wait_for(gateway.client.get(HIT, headers=ACME), WAIT)
    assert (response.status, response.headers["X-Cache"]) == (200, "HIT")


MALFORMED = {
    "bad-request-line": b"NOT AN HTTP REQUEST LINE\r\nHost: gateway.test\r\n\r\n",
    "invalid-header": b"GET " + HIT.encode() + b" HTTP/1.1\r\nHost: gateway.test\r\nBad Header: x\r\n\r\n",
    "9-kib-request-line": b"GET /v1/training-jobs?limit=" + b"5" * 9216 + b" HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
    # a hit but for hixie-76's handshake header (its body has no length), which aiohttp's parser
    # refuses outright: the fast path answered it
    "sec-websocket-key1": http_request(HIT, Sec_WebSocket_Key1="x"),
}
NEVER_A_WHOLE_HEAD = {
    "tls-client-hello": bytes.fromhex("16030100c4010000c00303") + b"\x11" * 32 + b"\x00\x00\x02\x13\x01\x01\x00",
    "ssh-banner": b"SSH-2.0-OpenSSH_9.6\r\n",
    "bare-lf-request": b"GET " + HIT.encode() + b" HTTP/1.1\nHost: gateway.test\n\n",
    "lower-case-method": b"get " + HIT.encode() + b" HTTP/1.1\r\nHost: gateway.test\r\n",
    "http-9.9": b"GET / HTTP/9.9\r\n",
    "9-kb-line-unended": b"GET /" + b"a" * 9000,
}


@pytest.mark.parametrize("malformed", MALFORMED.values(), ids=MALFORMED.keys())
async def test_hits_before_a_malformed_request_are_answered_then_400_and_close(
    gateway: Gateway, malformed: bytes
) -> None:
    """Hit, hit, malformed, hit in one write: two hits in order, a 400, the connection closed,
    the last hit unanswered; new connections are still served."""
    await gateway.client.get(HIT, headers=ACME)
    payload = http_request(HIT, X_Request_Id="one") + http_request(HIT, X_Request_Id="two")
    payload += malformed + http_request(HIT, X_Request_Id="after")
    responses, rest = await read_all(gateway, payload, 3)
    assert [r.status for r in responses] == [200, 200, 400]
    assert [r.headers.get("x-request-id") for r in responses[:2]] == ["one", "two"]
    assert [r.headers["x-cache"] for r in responses[:2]] == ["HIT", "HIT"]
    assert rest == b""
    await still_serves(gateway)


@pytest.mark.parametrize("start", NEVER_A_WHOLE_HEAD.values(), ids=NEVER_A_WHOLE_HEAD.keys())
async def test_bytes_that_cannot_begin_a_plain_head_get_their_400_without_a_blank_line(
    gateway: Gateway, start: bytes
) -> None:
    """Hit, hit, then bytes no plain head begins with and no blank line follows (a TLS handshake
    on the plain port, a non-HTTP probe, a bare-LF or lower-case client): the hits, then
    aiohttp's 400 at once and the connection closed, as the chain answers them (the connection
    used to wait, silent, for a blank line or 32 KiB)."""
    await gateway.client.get(HIT, headers=ACME)
    payload = http_request(HIT, X_Request_Id="one") + http_request(HIT, X_Request_Id="two") + start
    responses, rest = await read_all(gateway, payload, 3)
    assert [r.status for r in responses] == [200, 200, 400]
    assert rest == b""
    await still_serves(gateway)


async def test_a_malformed_request_first_in_a_batch_gets_400_and_nothing_else(gateway: Gateway) -> None:
    """Malformed, hit, hit in one write: one 400, then the connection closes."""
    await gateway.client.get(HIT, headers=ACME)
    payload = MALFORMED["bad-request-line"] + http_request(HIT) + http_request(HIT)
    responses, rest = await read_all(gateway, payload, 1)
    assert [r.status for r in responses] == [400]
    assert rest == b""
    await still_serves(gateway)


async def test_a_request_handed_to_the_chain_before_a_malformed_one_is_answered_first(gateway: Gateway) -> None:
    """Hit, miss, malformed, hit in one write: the hit, the miss (from the chain), a 400, closed."""
    await gateway.client.get(HIT, headers=ACME)
    payload = http_request(HIT, X_Request_Id="hit") + http_request(MISS, X_Request_Id="miss")
    payload += MALFORMED["invalid-header"] + http_request(HIT, X_Request_Id="after")
    responses, rest = await read_all(gateway, payload, 3)
    assert [(r.status, r.headers.get("x-cache")) for r in responses] == [(200, "HIT"), (200, "MISS"), (400, None)]
    assert [r.headers.get("x-request-id") for r in responses[:2]] == ["hit", "miss"]
    assert rest == b""
    await still_serves(gateway)


CREDENTIAL_LINES = {
    "a-control-byte-after-the-key": b"Authorization: Bearer " + ACME_KEY.encode() + b"\x1f",
    "a-space-before-the-colon": b"Authorization : Bearer " + ACME_KEY.encode(),
    "a-folded-line": b"Authorization: Bearer\r\n " + ACME_KEY.encode(),
}


@pytest.mark.parametrize("fast_hit_path", [True, False], ids=["fast-path", "chain-only"])
@pytest.mark.parametrize("line", CREDENTIAL_LINES.values(), ids=CREDENTIAL_LINES.keys())
async def test_a_request_the_parser_refuses_is_not_quoted_back(
    make_gateway: GatewayFactory, fast_hit_path: bool, line: bytes
) -> None:
    """A malformed ``Authorization`` line gets a 400 in the gateway's error envelope, naming the
    kind of error only, with a request id: aiohttp's text used to quote the line, the caller's API
    key with it (a JWT whole), to whatever keeps error bodies on the way back, and was not JSON."""
    gateway = await make_gateway(fast_hit_path=fast_hit_path)
    request = b"GET " + HIT.encode() + b" HTTP/1.1\r\nHost: gateway.test\r\n" + line + b"\r\n\r\n"
    responses, rest = await read_all(gateway, request, 1)
    (response,) = responses
    assert response.status == 400
    error = orjson.loads(response.body)["error"]  # the envelope every error has, not aiohttp's text
    assert (error["code"], error["message"].startswith("malformed HTTP request (")) == ("invalid_parameter", True)
    assert error["request_id"] == response.headers["x-request-id"] and response.headers["content-type"].startswith(
        "application/json"
    )
    assert (response.headers["x-content-type-options"], response.headers["cache-control"]) == ("nosniff", "no-store")
    assert response.headers["server"] == "metastudio-gateway"  # no version of Python or aiohttp
    assert ACME_KEY.encode() not in response.body + rest
    assert rest == b""


@pytest.mark.parametrize("fast_hit_path", [True, False], ids=["fast-path", "chain-only"])
@pytest.mark.parametrize(
    "line", [b"OPTIONS * HTTP/1.1", b"CONNECT gateway.test:443 HTTP/1.1"], ids=["asterisk", "authority"]
)
async def test_a_target_no_route_can_match_gets_the_observed_404(
    make_gateway: GatewayFactory, fast_hit_path: bool, line: bytes
) -> None:
    """``OPTIONS *`` and ``CONNECT host:port`` (a scanner's, a proxy's) match no route, not even the
    catch-all, whose paths begin with '/': they get the gateway's 404 envelope with a request id
    and ``nosniff``, counted and logged under the route ``unmatched``. aiohttp answered them with
    its own plain-text 404, outside the handlers' wrapper: no id, no header, no count, no line."""
    gateway = await make_gateway(fast_hit_path=fast_hit_path)
    head = line + b"\r\nHost: gateway.test\r\nX-Request-Id: odd-target\r\nConnection: close\r\n\r\n"
    (response,), _ = await read_all(gateway, head, 1)
    assert response.status == 404
    assert response.headers["x-request-id"] == "odd-target"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert b'"code":"not_found"' in response.body
    method = line.split(b" ")[0].decode()
    labels = {"route": "unmatched", "method": method if method == "OPTIONS" else "OTHER", "status": "404"}
    assert gateway.metric("metastudio_gateway_http_requests_total", tenant="anonymous", **labels) == 1
    (logged,) = [record for record in gateway.log_records() if record.get("request_id") == "odd-target"]
    assert (logged["route"], logged["status"]) == ("unmatched", 404)


async def test_with_every_internal_in_place_the_check_finds_nothing_missing() -> None:
    """On the pinned aiohttp the start-up check passes, so the fast path is on."""
    assert missing_internals(asyncio.get_running_loop()) == []


@pytest.mark.parametrize(
    ("classes", "named"),
    [
        ({"handler_class": HandlerWithoutForceClose}, "RequestHandler._force_close"),
        ({"handler_class": HandlerWithAnotherLogAccess}, "RequestHandler.log_access(request, response, time)"),
        ({"handler_class": HandlerParsingElsewhere}, "RequestHandler.data_received -> _parser.feed_data"),
        ({"handler_class": HandlerWithoutKeepaliveCheck}, "RequestHandler._process_keepalive"),
        ({"handler_class": HandlerShuttingDownAtOnce}, "RequestHandler.shutdown(timeout)"),
        (
            {"handler_class": HandlerWithAnotherHandleError},
            "RequestHandler.handle_error(request, status, exc, message)",
        ),
        ({"server_class": ServerWithoutKwargs}, "Server._kwargs"),
    ],
    ids=["force-close", "log-access", "data-received", "keepalive-check", "shutdown", "handle-error", "server-kwargs"],
)
async def test_the_check_names_each_missing_internal(classes: dict[str, Any], named: str) -> None:
    """A class lacking an internal the connection relies on is reported by name."""
    assert missing_internals(asyncio.get_running_loop(), **classes) == [named]


async def test_a_missing_internal_leaves_hits_to_the_chain_with_one_warning_and_the_metric_at_0(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """With a stand-in aiohttp lacking ``_force_close``: hits are still served (by the
    chain), one warning names the missing internal, and the gauge reads 0."""
    caplog.set_level(logging.WARNING, logger="gateway.fastpath.protocol")

    def check(loop: asyncio.AbstractEventLoop) -> list[str]:
        return missing_internals(loop, handler_class=HandlerWithoutForceClose)

    gateway = await make_gateway(runner_options={"internals_check": check})
    await gateway.client.get(HIT, headers=ACME)
    prepared = chain_responses(gateway)
    responses, _ = await read_all(gateway, http_request(HIT) + http_request(HIT, Connection="close"), 2)
    assert [(r.status, r.headers["x-cache"]) for r in responses] == [(200, "HIT"), (200, "HIT")]
    assert prepared == [200, 200]
    warnings = [r for r in caplog.records if r.name == "gateway.fastpath.protocol"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "RequestHandler._force_close" in warnings[0].getMessage()
    assert gateway.metric(ENABLED) == 0


async def test_the_metric_reads_1_while_connections_answer_hits(gateway: Gateway) -> None:
    """With every internal in place and the fast path on, the gauge reads 1."""
    assert gateway.metric(ENABLED) == 1


async def test_switched_off_the_metric_reads_0_and_nothing_is_logged(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """``[server] fast_hit_path = false``: the gauge reads 0, and no warning is logged."""
    caplog.set_level(logging.WARNING, logger="gateway.fastpath.protocol")
    gateway = await make_gateway(fast_hit_path=False)
    assert gateway.metric(ENABLED) == 0
    assert [r for r in caplog.records if r.name == "gateway.fastpath.protocol"] == []
