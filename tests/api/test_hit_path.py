"""List and job answers given by the connection (``gateway.fastpath.hits`` + ``gateway.fastpath.protocol``):
plain cache hits at once, misses and the service's other answers once fetched.

What a caller must not be able to tell: the answer is the one the handler chain gives, in the
same order on a pipelined connection, with the same log line and metrics. A request sent with
``Connection: close`` is always handed to the chain, which gives each hit its reference answer
from the same gateway and the same cache entry; a fetched answer's reference comes from a second
gateway with the fast path off, in front of the same dataset and clock. Answers that skipped the
chain are told apart by ``on_response_prepare``, which only the chain fires.
"""

from __future__ import annotations

import asyncio
import io
import re
import select
import socket
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson
import pytest

from gateway.config.settings import RateLimitSettings
from gateway.fastpath.protocol import HIT_RESPONDER, HitServingRequestHandler
from gateway.fastpath.turn_writes import HOLD_AT_MOST, TurnWrites
from gateway.simulator.faults import Fault
from gateway.web.appkeys import SERVICE
from gateway.web.tail import TURN_LOG_BATCH
from tests.api.conftest import ACME, ACME_KEY, Gateway, GatewayFactory, held_by_the_gateway
from tests.leaks import record

pytestmark = pytest.mark.asyncio

APP_ORIGIN = "https://app.example.com"
_COVER_SIGNATURE = re.compile(rb"Signature=[^&\"]*")
UNCOMPARABLE = {"date", "connection"}
"""Headers that legitimately differ between two answers: the clock second, and the
``Connection: close`` the reference answer echoes."""


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture(autouse=True, params=["quiet", "busy"])
def server_load(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs twice: as on a quiet server, whose hits are written as they are
    answered, and as under load, whose hits are held for the end of the loop's turn
    (``TurnWrites.holding`` always true)."""
    if request.param == "busy":
        monkeypatch.setattr(
            TurnWrites, "holding", property(lambda _self: True, lambda _self, _value: None), raising=False
        )


def chain_responses(gateway: Gateway) -> list[int]:
    """A list that grows by one status for each response the handler chain prepares from now on."""
    gateway.chain_statuses.clear()
    return gateway.chain_statuses


def http_request(target: str, *, method: str = "GET", version: str = "1.1", **headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: gateway.test", f"Authorization: Bearer {ACME_KEY}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    record(head)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    length = int(headers.get("content-length", "0"))
    body = b"" if method == "HEAD" or status == 304 else await reader.readexactly(length)
    record(body)
    return RawResponse(status, headers, body)


async def connect(gateway: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server = gateway.client.server
    return await asyncio.open_connection(server.host, server.port)


async def exchange(gateway: Gateway, requests: list[bytes], methods: list[str] | None = None) -> list[RawResponse]:
    """Send ``requests`` pipelined in one write on one connection; read their responses."""
    reader, writer = await connect(gateway)
    writer.write(b"".join(requests))
    try:
        return [await read_response(reader, method) for method in methods or ["GET"] * len(requests)]
    finally:
        writer.close()


async def fetch(gateway: Gateway, method: str, target: str, headers: dict[str, str]) -> RawResponse:
    response = await gateway.client.request(method, target, headers={**ACME, **headers})
    body = await response.read()
    return RawResponse(response.status, {k.lower(): v for k, v in response.headers.items()}, body)


def comparable(response: RawResponse) -> tuple[int, dict[str, str], bytes]:
    return response.status, {k: v for k, v in response.headers.items() if k not in UNCOMPARABLE}, response.body


def without_timing(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("time", "duration_ms")}


async def first_job_id(gateway: Gateway) -> str:
    jobs = (await (await gateway.client.get("/v1/training-jobs?limit=20", headers=ACME)).json())["jobs"]
    return str(jobs[0]["job_id"])


def hit_cases(job_id: str, etag: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    yield "GET", "/v1/training-jobs?limit=20", {}
    yield "GET", "/v1/training-jobs?limit=20", {"Accept-Encoding": "gzip, deflate"}
    yield "GET", "/v1/training-jobs?limit=20", {"Accept-Encoding": "gzip;q=0"}
    yield "HEAD", "/v1/training-jobs?limit=20", {}
    yield "GET", "/v1/training-jobs?limit=20", {"If-None-Match": etag}
    yield "GET", "/v1/training-jobs?limit=20", {"Origin": APP_ORIGIN}
    yield "GET", "/v1/training-jobs?limit=20", {"Origin": "https://elsewhere.example"}
    yield "GET", "/v1/training-jobs?limit=20", {"X-Request-Id": "bad id with spaces"}
    yield "GET", f"/v1/training-jobs/{job_id}", {}
    yield "HEAD", f"/v1/training-jobs/{job_id}", {"Accept-Encoding": "gzip"}


async def test_hits_skip_the_handler_chain_and_match_its_answer(make_gateway: GatewayFactory) -> None:
    """For each kind of hit (gzip or not, HEAD, 304, CORS, a job, a made-up request id) the
    connection's answer has the status, headers and body the chain gives for the same request."""
    gateway = await make_gateway(cors_origins=(APP_ORIGIN,))
    job_id = await first_job_id(gateway)
    await gateway.client.get(f"/v1/training-jobs/{job_id}", headers=ACME)
    etag = (await gateway.client.get("/v1/training-jobs?limit=20", headers=ACME)).headers["ETag"]
    prepared = chain_responses(gateway)
    for number, (method, target, headers) in enumerate(hit_cases(job_id, etag)):
        request_id = {"X-Request-Id": f"case-{number}"} if "X-Request-Id" not in headers else {}
        fast = await fetch(gateway, method, target, {**headers, **request_id})
        assert prepared == [], f"{method} {target} {headers} went through the handler chain"
        reference = await fetch(gateway, method, target, {**headers, **request_id, "Connection": "close"})
        assert prepared == [reference.status]
        prepared.clear()
        assert fast.headers["x-cache"] == "HIT"
        if "X-Request-Id" in headers:  # both made up their own id: equal in form, not in value
            assert fast.headers.pop("x-request-id") != reference.headers.pop("x-request-id")
        assert comparable(fast) == comparable(reference), f"{method} {target} {headers}"


async def test_hits_are_logged_and_counted_like_the_chain_counts_them(gateway: Gateway) -> None:
    """A hit answered by the connection writes the same access-log line (but for timings) and
    adds to the same request and cache counters as the chain's answer."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    before = len(gateway.log_records())
    await fetch(gateway, "GET", "/v1/training-jobs?limit=5", {"X-Request-Id": "same-id"})
    await fetch(gateway, "GET", "/v1/training-jobs?limit=5", {"X-Request-Id": "same-id", "Connection": "close"})
    fast, reference = gateway.log_records()[before:]
    assert without_timing(fast) == without_timing(reference)
    assert fast["cache"] == "hit" and fast["route"] == "/v1/training-jobs" and fast["tenant"] == "acme"
    labels = {"route": "/v1/training-jobs", "method": "GET", "status": "200", "tenant": "acme"}
    assert gateway.metric("metastudio_gateway_http_requests_total", **labels) == 3
    assert gateway.metric("metastudio_gateway_cache_requests_total", result="hit") == 2


class PeekingLog(io.BytesIO):
    """An access-log stream that, at each write, notes how many answers a client socket (which
    nobody reads meanwhile) has received, and how many hit lines the write holds. Answers
    already written may take a moment to reach the socket: it waits up to a second for as many
    as the lines written so far (an answer not yet written never arrives)."""

    def __init__(self) -> None:
        super().__init__()
        self.client: socket.socket | None = None
        self.writes: list[tuple[int, int]] = []

    def _answers_received(self, wanted: int) -> int:
        assert self.client is not None
        received = 0
        for _ in range(100):
            try:
                received = self.client.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT).count(b"HTTP/1.1 200 OK")
            except BlockingIOError:
                received = 0
            if received >= wanted:
                break
            select.select([self.client], [], [], 0.01)
        return received

    def write(self, data: Any) -> int:
        if self.client is not None:
            lines = bytes(data).count(b'"cache":"hit"')
            wanted = sum(written for _, written in self.writes) + lines
            self.writes.append((self._answers_received(wanted), lines))
        return super().write(data)


@pytest.mark.parametrize("flush_interval", [0, 3600], ids=["every line at once", "batched"])
async def test_hits_are_sent_before_their_log_lines_are_written(
    make_gateway: GatewayFactory, flush_interval: float
) -> None:
    """The batch work of the hits in a read (log lines encoded and written, counters folded) is
    done once their answers are sent, so no answer waits for it: whenever log lines are
    written, the client has already received the answers they are for. Batched, a pipelined
    read of more than half a batch has its lines written at the end of the loop's turn,
    without waiting for a full batch or the periodic flush (an hour away here)."""
    hits = TURN_LOG_BATCH + 8
    log = PeekingLog()
    gateway = await make_gateway(log_stream=log, log_flush_interval=flush_interval)
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    loop = asyncio.get_running_loop()
    server = gateway.client.server
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for every answer
        client.setblocking(False)
        await loop.sock_connect(client, (server.host, server.port))
        log.client = client
        await loop.sock_sendall(client, b"".join([http_request("/v1/training-jobs?limit=5", method="HEAD")] * hits))
        for _ in range(200):
            if sum(lines for _, lines in log.writes) >= hits:
                break
            await asyncio.sleep(0.01)
        log.client = None
    lines_written = 0
    for answers_received, lines in log.writes:
        lines_written += lines
        assert answers_received >= lines_written
    assert lines_written == hits


class FailingLog(io.BytesIO):
    """An access-log stream whose writes fail while ``failing`` (a stdout whose reader is gone)."""

    failing = True

    def write(self, data: Any) -> int:
        if self.failing:
            raise OSError("the access log's stream is gone")
        return super().write(data)


async def test_hits_are_answered_while_the_access_log_cannot_be_written(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """When writing the log lines at the end of the loop's turn fails, the loop reports the
    error and the connection goes on: every hit before and after is answered."""
    log = FailingLog()
    gateway = await make_gateway(log_stream=log, log_flush_interval=3600)
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)  # the miss
    hits = TURN_LOG_BATCH + 8
    reader, writer = await connect(gateway)
    try:
        writer.write(b"".join([http_request("/v1/training-jobs?limit=5")] * hits))
        answers = [await asyncio.wait_for(read_response(reader), timeout=5) for _ in range(hits)]
        for _ in range(100):  # until the turn's end has tried to write the lines
            if "OSError" in caplog.text:
                break
            await asyncio.sleep(0.01)
        writer.write(http_request("/v1/training-jobs?limit=5"))
        answers.append(await asyncio.wait_for(read_response(reader), timeout=5))
    finally:
        writer.close()
        log.failing = False
    assert "OSError" in caplog.text
    assert [(a.status, a.headers["x-cache"]) for a in answers] == [(200, "HIT")] * (hits + 1)


async def test_pipelined_responses_keep_request_order_around_a_slow_miss(gateway: Gateway) -> None:
    """Hit, slow miss, hit, hit in one write: answers come back in that order, so the hits after
    the miss wait for it instead of overtaking it."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.3, remaining=1))
    requests = [
        http_request("/v1/training-jobs?limit=5", X_Request_Id="first"),
        http_request("/v1/training-jobs?limit=6", X_Request_Id="second"),
        http_request("/v1/training-jobs?limit=5", X_Request_Id="third"),
        http_request("/v1/training-jobs?limit=5", X_Request_Id="fourth"),
    ]
    responses = await exchange(gateway, requests)
    assert [r.headers["x-request-id"] for r in responses] == ["first", "second", "third", "fourth"]
    assert [r.headers["x-cache"] for r in responses] == ["HIT", "MISS", "HIT", "HIT"]
    assert {r.status for r in responses} == {200}


async def test_more_pipelined_hits_than_the_parsers_queue_holds_are_all_answered(gateway: Gateway) -> None:
    """100 hits in one write (aiohttp's parser stops after 32 and keeps the rest): all 100 are
    answered by the connection, in order, without the client sending anything more."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    requests = [http_request("/v1/training-jobs?limit=5", X_Request_Id=f"p{number}") for number in range(100)]
    responses = await asyncio.wait_for(exchange(gateway, requests), timeout=10)
    assert [r.headers["x-request-id"] for r in responses] == [f"p{number}" for number in range(100)]
    assert prepared == []


async def test_many_pipelined_hits_to_a_client_that_reads_late_all_arrive_in_order(gateway: Gateway) -> None:
    """2000 pipelined hits (12 MB of answers) to a client that starts reading only after 0.3 s:
    once the socket buffers fill, flow control hands hits to aiohttp's writer (which waits for
    the reader) and the connection pauses reading; every answer still arrives, in order."""
    await gateway.client.get("/v1/training-jobs?limit=10", headers=ACME)
    count = 2000
    reader, writer = await connect(gateway)

    async def send() -> None:
        for number in range(count):
            writer.write(http_request("/v1/training-jobs?limit=10", X_Request_Id=f"r{number}"))
            await writer.drain()

    sending = asyncio.create_task(send())
    await asyncio.sleep(0.3)
    try:
        ids = [(await read_response(reader)).headers["x-request-id"] for _ in range(count)]
        await sending
    finally:
        writer.close()
    assert ids == [f"r{number}" for number in range(count)]


class RecordingTransport:
    """A connection's transport, the sizes of its writes noted."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_the_answers_a_connection_holds_for_the_turns_end_are_bounded(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 pipelined hits in one write (1.7 MB of answers), under load: the connection holds
    its answers for the end of the loop's turn only up to ``HOLD_AT_MOST`` bytes, then writes them, so the
    transport's flow control sees them as they are made (a client not reading stops the
    answering); they are not all made first and handed over at once. Every answer arrives, in
    order."""
    await gateway.client.get("/v1/training-jobs?limit=10", headers=ACME)
    count = 300
    read = HitServingRequestHandler.data_received
    recording: list[RecordingTransport] = []

    def data_received(self: HitServingRequestHandler, data: bytes) -> None:
        if not recording:
            recording.append(RecordingTransport(self.transport))
            self.transport = cast(Any, recording[0])
        self._turn_writes.holding = True  # as under load: answers are held for the turn's end
        read(self, data)

    monkeypatch.setattr(HitServingRequestHandler, "data_received", data_received)
    answers = await exchange(
        gateway, [http_request("/v1/training-jobs?limit=10", X_Request_Id=f"r{number}") for number in range(count)]
    )
    assert [answer.headers["x-request-id"] for answer in answers] == [f"r{number}" for number in range(count)]
    largest_answer = max(len(answer.body) for answer in answers) + 1024  # with its head
    assert max(recording[0].writes) < HOLD_AT_MOST + largest_answer


async def test_a_head_arriving_in_pieces_is_answered_once_it_is_whole(gateway: Gateway) -> None:
    """A request head split over three writes (mid-line, mid-header) is held until its blank
    line arrives, then answered by the connection; a second head in the same pieces too."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    reader, writer = await connect(gateway)
    try:
        for number in range(2):
            request = http_request("/v1/training-jobs?limit=5", X_Request_Id=f"piece-{number}")
            for piece in (request[:7], request[7:40], request[40:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)
            response = await asyncio.wait_for(read_response(reader), timeout=5)
            assert (response.status, response.headers["x-request-id"]) == (200, f"piece-{number}")
    finally:
        writer.close()
    assert prepared == []


async def test_after_a_request_the_chain_answers_the_connection_answers_hits_again(gateway: Gateway) -> None:
    """An invalid query (the chain's 400), then hits on the same keep-alive connection: the
    hits skip the chain."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    reader, writer = await connect(gateway)
    try:
        statuses = []
        for target in ("/v1/training-jobs?limit=zero", "/v1/training-jobs?limit=5", "/v1/training-jobs?limit=5"):
            writer.write(http_request(target))
            response = await asyncio.wait_for(read_response(reader), timeout=5)
            statuses.append((response.status, response.headers.get("x-cache")))
    finally:
        writer.close()
    assert statuses == [(400, None), (200, "HIT"), (200, "HIT")]
    assert prepared == [400]


async def test_a_request_with_a_body_then_hits_on_one_connection_all_get_their_answers(gateway: Gateway) -> None:
    """After a GET with a body (the chain's 400), aiohttp's parser may hold bytes, so the
    connection leaves later requests to it: they are answered, in order, by the chain."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    requests = [
        http_request("/v1/training-jobs?limit=5", Content_Length="2") + b"{}",
        http_request("/v1/training-jobs?limit=5", X_Request_Id="after-body"),
    ]
    responses = await asyncio.wait_for(exchange(gateway, requests), timeout=5)
    assert [r.status for r in responses] == [400, 200]
    assert responses[1].headers["x-request-id"] == "after-body"
    assert prepared == [400, 200]


async def test_an_endless_head_is_not_kept_but_judged_by_aiohttp(gateway: Gateway) -> None:
    """A head that never ends is held only up to the longest head read here; past that,
    aiohttp's parser takes the bytes and answers 400 (a header over its field limit)."""
    reader, writer = await connect(gateway)
    try:
        writer.write(b"GET /v1/training-jobs HTTP/1.1\r\nHost: gateway.test\r\nX-Long: ")
        for _ in range(10):
            writer.write(b"a" * 4096)
            await writer.drain()
        response = await asyncio.wait_for(read_response(reader), timeout=5)
        assert response.status == 400
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    finally:
        writer.close()


async def test_hits_with_long_accept_encodings_are_answered_without_keeping_their_heads(gateway: Gateway) -> None:
    """A thousand hits, each with its own 8 KB Accept-Encoding: each is answered (gzip, as it
    asks), and the heads kept for reuse hold little: each was kept under its Accept-Encoding,
    8 MB here and 16 MiB at the memo's bound."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    requests = [
        http_request("/v1/training-jobs?limit=5", Accept_Encoding=f"gzip, x-{number}-{'p' * 8000};q=0.1")
        for number in range(1000)
    ]
    tracemalloc.start()
    try:
        answers = await exchange(gateway, requests)
        held = held_by_the_gateway()
    finally:
        tracemalloc.stop()
    assert {(answer.status, answer.headers["content-encoding"]) for answer in answers} == {(200, "gzip")}
    assert held < 1 << 20  # what the gateway's code allocated and still holds


@pytest.mark.parametrize("fast_hit_path", [True, False], ids=["fast path", "handler chain"])
async def test_at_max_connections_the_longest_idle_connection_makes_room(
    make_gateway: GatewayFactory, fast_hit_path: bool
) -> None:
    """Three connections open, the cap: one idle since its answer, then one with only part of a
    head in, then one idle since a later answer. A fourth is served, and the connection idle
    longest is closed to make room: a kubelet probe or a new client is not shut out by idle
    connections (a load balancer's pool, a slow client's)."""
    gateway = await make_gateway(fast_hit_path=fast_hit_path, runner_options={"max_connections": 3})
    oldest = await connect(gateway)
    oldest[1].write(http_request("/v1/training-jobs?limit=5"))
    assert (await read_response(oldest[0])).status == 200
    await asyncio.sleep(0.05)  # (idle times are on the event loop's clock)
    partial = await connect(gateway)
    partial[1].write(b"GET /v1/training-jobs HTTP/1.1\r\nHost: gateway.test\r\n")
    await asyncio.sleep(0.05)
    recent = await connect(gateway)
    recent[1].write(http_request("/v1/training-jobs?limit=5"))
    assert (await read_response(recent[0])).status == 200
    [served] = await exchange(gateway, [http_request("/v1/training-jobs?limit=5")])
    assert served.status == 200
    assert await asyncio.wait_for(oldest[0].read(), timeout=5) == b""  # closed to make room
    assert gateway.metric("metastudio_gateway_connections_turned_away_total") == 0
    for _, writer in (oldest, partial, recent):
        writer.close()


@pytest.mark.parametrize("fast_hit_path", [True, False], ids=["fast path", "handler chain"])
async def test_at_max_connections_with_none_idle_a_new_connection_is_closed_at_once(
    make_gateway: GatewayFactory, fast_hit_path: bool
) -> None:
    """Two connections open, the cap, each waiting for a slow miss: a third is closed as soon as
    it is made, and counted; the two are answered. Nothing capped connections before: each
    holding a head that never ends held up to 148 KiB."""
    gateway = await make_gateway(fast_hit_path=fast_hit_path, runner_options={"max_connections": 2})
    gateway.simulator.state.response_delay_seconds = 0.5
    busy = [await connect(gateway) for _ in range(2)]
    for offset, (_, writer) in enumerate(busy):
        writer.write(http_request(f"/v1/training-jobs?offset={offset + 1}"))
    await asyncio.sleep(0.1)  # both misses at the upstream
    reader, writer = await connect(gateway)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed, nothing answered
    writer.close()
    assert gateway.metric("metastudio_gateway_connections_turned_away_total") == 1
    for reader, writer in busy:
        assert (await read_response(reader)).status == 200
        writer.close()


@pytest.mark.parametrize("fast_hit_path", [True, False], ids=["fast path", "handler chain"])
async def test_a_head_that_never_ends_is_refused_past_32_kib(make_gateway: GatewayFactory, fast_hit_path: bool) -> None:
    """Header lines each within aiohttp's field limit, and a head that never ends: past 32 KiB
    the request gets the 400 envelope naming HeadTooLarge and the connection is closed. aiohttp's
    parser took up to 128 such lines, 4 MiB a connection, waiting for the end (with no credentials)."""
    gateway = await make_gateway(fast_hit_path=fast_hit_path)
    reader, writer = await connect(gateway)
    try:
        writer.write(b"GET /v1/training-jobs HTTP/1.1\r\nHost: gateway.test\r\n")
        for number in range(17):  # 17 x 4 KiB: past 32 KiB, and past 64 KiB, with 111 lines to spare
            writer.write(f"X-Padding-{number}: ".encode() + b"a" * 4096 + b"\r\n")
            await writer.drain()
        response = await asyncio.wait_for(read_response(reader), timeout=5)
        assert response.status == 400
        error = orjson.loads(response.body)["error"]
        assert (error["code"], error["message"]) == ("invalid_parameter", "malformed HTTP request (HeadTooLarge)")
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    finally:
        writer.close()


async def test_a_long_head_that_ends_is_judged_by_the_request_limits(gateway: Gateway) -> None:
    """Under the cap a whole head is read as before: 20 KB of headers get the request limits'
    own 400 (saying which limit), not HeadTooLarge, and the connection serves on."""
    padding = {f"X_Padding_{number}": "a" * 4000 for number in range(5)}
    [refused, served] = await exchange(
        gateway, [http_request("/v1/training-jobs?limit=5", **padding), http_request("/v1/training-jobs?limit=5")]
    )
    assert refused.status == 400
    assert "more than 100 headers or more than 16384 bytes of them" in orjson.loads(refused.body)["error"]["message"]
    assert served.status == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (http_request("/v1/training-jobs?limit=5", version="1.0"), 200),
        (http_request("/v1/training-jobs?limit=5", Connection="close"), 200),
        (http_request("/v1/training-jobs?limit=5", Content_Length="2") + b"{}", 400),
        (http_request("/v1/training-jobs?limit=5", Transfer_Encoding="chunked") + b"0\r\n\r\n", 400),
    ],
    ids=["http-1.0", "connection-close", "body", "chunked-body"],
)
async def test_requests_the_connection_does_not_answer_get_the_chains_answer(
    gateway: Gateway, request_bytes: bytes, status: int
) -> None:
    """HTTP/1.0, Connection: close and a GET carrying a body are left to the handler chain: the
    connection closes after the answer where HTTP says so, and a body still gets the 400."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    reader, writer = await connect(gateway)
    writer.write(request_bytes)
    try:
        response = await read_response(reader)
        if status == 200:
            assert await reader.read() == b""  # closed by the gateway
    finally:
        writer.close()
    assert response.status == status
    assert prepared == [status]


_MALFORMED = b"NOT AN HTTP REQUEST LINE\r\nHost: gateway.test\r\n\r\n"
_STATUS_OR_ID = re.compile(rb"HTTP/1\.[01] \d{3}|X-Request-Id: [^\r]*")


async def raw_socket(gateway: Gateway) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (gateway.client.server.host, gateway.client.server.port))
    return sock


async def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes (at most 3 s between reads)."""
    loop, data = asyncio.get_running_loop(), b""
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 3):
        data += chunk
    return data


async def test_a_request_read_after_a_malformed_one_is_not_answered_before_its_400(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed request, then a hit read in the next loop turn, before aiohttp has sent the
    malformed one's 400: aiohttp answers 400 and closes, and the hit must not be answered (as
    stock aiohttp does), least of all ahead of the 400, which a client would pair with it."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    sock = await raw_socket(gateway)
    read = HitServingRequestHandler.data_received

    def data_received(self: HitServingRequestHandler, data: bytes) -> None:
        read(self, data)
        if data.startswith(b"NOT AN HTTP"):  # the client's next segment lands right after this read
            sock.send(http_request("/v1/training-jobs?limit=5", X_Request_Id="later"))

    monkeypatch.setattr(HitServingRequestHandler, "data_received", data_received)
    await asyncio.get_running_loop().sock_sendall(sock, _MALFORMED)
    try:
        received = await read_to_eof(sock)
    finally:
        sock.close()
    (status, made_id) = _STATUS_OR_ID.findall(received)  # the 400, with the id made for it; not the hit
    assert status == b"HTTP/1.0 400" and made_id.startswith(b"X-Request-Id: ") and b"later" not in received


async def test_a_hit_answered_in_the_turn_its_connection_is_closed_in_is_sent_before_the_close(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a hit's answer waits for the end of the loop's turn (``TurnWrites``); a
    connection closed within that turn (to make room for a new one, or by a shutdown) still
    sends it, then closes."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    sock = await raw_socket(gateway)
    read = HitServingRequestHandler.data_received

    def data_received(self: HitServingRequestHandler, data: bytes) -> None:
        self._turn_writes.holding = True  # as under load: the answer is held for the turn's end
        read(self, data)
        self.force_close()

    monkeypatch.setattr(HitServingRequestHandler, "data_received", data_received)
    await asyncio.get_running_loop().sock_sendall(sock, http_request("/v1/training-jobs?limit=5", X_Request_Id="last"))
    try:
        received = await read_to_eof(sock)
    finally:
        sock.close()
    assert _STATUS_OR_ID.findall(received) == [b"HTTP/1.1 200", b"X-Request-Id: last"]


@pytest.mark.parametrize("closing", [{"version": "1.0"}, {"Connection": "close"}], ids=["http-1.0", "connection-close"])
async def test_nothing_is_answered_after_a_chain_answer_that_closes_the_connection(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, closing: dict[str, str]
) -> None:
    """A request the chain answers and then closes the connection on: a request arriving while
    the chain finishes is not answered (aiohttp drops it as it closes), nor counted or logged."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    sock = await raw_socket(gateway)
    loop = asyncio.get_running_loop()
    read = HitServingRequestHandler.data_received
    sent: list[bool] = []

    def data_received(self: HitServingRequestHandler, data: bytes) -> None:
        read(self, data)
        if not sent:  # the client's next segment arrives while the chain answers the first
            sent.append(True)
            loop.call_soon(sock.send, http_request("/v1/training-jobs?limit=5", X_Request_Id="later"))

    monkeypatch.setattr(HitServingRequestHandler, "data_received", data_received)
    await loop.sock_sendall(sock, http_request("/v1/training-jobs?limit=5", X_Request_Id="first", **closing))
    try:
        received = await read_to_eof(sock)
    finally:
        sock.close()
    assert _STATUS_OR_ID.findall(received)[1:] == [b"X-Request-Id: first"]
    assert b"later" not in gateway.log.getvalue()


async def test_a_fast_hit_connection_is_kept_alive_while_used_and_closed_when_idle(
    make_gateway: GatewayFactory,
) -> None:
    """Answers given by the connection count as activity for the keep-alive timer (0.5 s here):
    hits every 0.2 s for 1.2 s share one connection; after 1 s of silence it is closed."""
    gateway = await make_gateway(runner_options={"keepalive_timeout": 0.5})
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    reader, writer = await connect(gateway)
    try:
        for _ in range(6):
            writer.write(http_request("/v1/training-jobs?limit=5"))
            assert (await read_response(reader)).status == 200
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        assert await asyncio.wait_for(reader.read(), timeout=1) == b""
    finally:
        writer.close()
    assert prepared == []


async def test_rate_limit_takes_one_token_per_request_whichever_path_answers(make_gateway: GatewayFactory) -> None:
    """Burst 3 and no refill (the clock stands still): after the miss, 2 hits pass, then 429s,
    from the chain, with Retry-After; declined hits consumed nothing twice."""
    gateway = await make_gateway(rate_limit=RateLimitSettings(requests_per_second=1, burst=3))
    statuses = [(await gateway.client.get("/v1/training-jobs", headers=ACME)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_a_hit_due_for_refresh_is_answered_here_and_starts_the_refetch(make_gateway: GatewayFactory) -> None:
    """In an entry's last tenth of life the connection answers through the service, which
    starts the re-fetch; unknown keys and invalid queries get the chain's 401 and 400."""
    gateway = await make_gateway(ttl_seconds=100)
    await gateway.client.get("/v1/training-jobs", headers=ACME)
    prepared = chain_responses(gateway)
    calls = gateway.upstream_calls
    gateway.clock.advance(95)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.headers["X-Cache"] == "HIT"
    for _ in range(100):  # the re-fetch runs in the background
        if gateway.upstream_calls > calls:
            break
        await asyncio.sleep(0.01)
    assert gateway.upstream_calls == calls + 1
    assert prepared == []
    bad_key = await gateway.client.get("/v1/training-jobs", headers={"Authorization": "Bearer nope"})
    bad_query = await gateway.client.get("/v1/training-jobs?limit=zero", headers=ACME)
    assert (bad_key.status, bad_query.status) == (401, 400)
    assert prepared == [401, 400]


async def test_a_failure_while_answering_hands_the_request_on(gateway: Gateway) -> None:
    """If deciding a hit raises (here the clock, the first thing the fast path reads after the
    caller), the request is not lost: the chain answers it and the log names the exception's
    type and place only."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    gateway.clock.fail_next_reading(RuntimeError("secret detail that must not be logged"))
    response = await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    assert response.status == 200
    assert response.headers["X-Cache"] == "HIT"
    assert prepared == [200]  # answered by the chain
    event = next(r for r in gateway.log_records() if r.get("event") == "unhandled_exception")
    assert event["error"] == "RuntimeError"
    assert event["where"].split(":")[0].endswith("clock.py")
    assert "secret detail" not in str(event)


async def test_with_the_fast_path_off_every_request_takes_the_chain(make_gateway: GatewayFactory) -> None:
    """``[server] fast_hit_path = false``: hits are answered by the handler chain."""
    gateway = await make_gateway(fast_hit_path=False)
    await gateway.client.get("/v1/training-jobs", headers=ACME)
    prepared = chain_responses(gateway)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (response.headers["X-Cache"], prepared) == ("HIT", [200])


def fetched_cases(job_id: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    yield "GET", "/v1/training-jobs?limit=5", {}
    yield "GET", "/v1/training-jobs?limit=6", {"Accept-Encoding": "gzip, deflate"}
    yield "HEAD", "/v1/training-jobs?limit=7", {}
    yield "GET", "/v1/training-jobs?limit=8", {"Origin": APP_ORIGIN}
    yield "GET", "/v1/training-jobs?limit=5&state_group=verifying,training", {}
    yield "GET", "/v1/training-jobs?state=TRAINING&state_group=verifying", {}  # matches nothing: not asked upstream
    yield "GET", f"/v1/training-jobs/{job_id}", {"Accept-Encoding": "gzip"}
    yield "GET", "/v1/training-jobs/no-such-job", {}  # the upstream has none: 404
    yield "GET", "/v1/training-jobs?limit=11", {"Origin": APP_ORIGIN}  # the upstream answers 502: 503


async def test_fetched_answers_match_the_chains_with_the_same_log_lines(make_gateway: GatewayFactory) -> None:
    """Misses (list and job, gzip or not, HEAD, CORS), a query matching nothing, a job the
    upstream does not have and an upstream failure, answered by the connection of one gateway
    and by the handler chain of another (fast path off) in front of the same dataset and clock:
    the same status, headers, body, log line (but its timings) and request counters."""
    fast = await make_gateway(cors_origins=(APP_ORIGIN,), max_attempts=1)
    chain = await make_gateway(cors_origins=(APP_ORIGIN,), max_attempts=1, fast_hit_path=False)
    job_id = await first_job_id(fast)
    await first_job_id(chain)
    fast_prepared, chain_prepared = chain_responses(fast), chain_responses(chain)
    for number, (method, target, headers) in enumerate(fetched_cases(job_id)):
        if target.endswith("limit=11"):
            for gateway in (fast, chain):
                gateway.simulator.state.faults.append(Fault("status", status=502, remaining=1))
        request_id = {"X-Request-Id": f"fetched-{number}"}
        answers = [await fetch(gateway, method, target, {**headers, **request_id}) for gateway in (fast, chain)]
        assert fast_prepared == [], f"{method} {target} went through the fast gateway's chain"
        assert chain_prepared == [answers[1].status]
        chain_prepared.clear()
        seen = [across_simulators(answer, gateway) for answer, gateway in zip(answers, (fast, chain), strict=True)]
        assert seen[0] == seen[1], f"{method} {target} {headers}"
    assert {answer.status for answer in answers} == {503}  # the upstream failing: the last case
    lines = [
        [timeless(r) for r in gateway.log_records() if r.get("request_id", "").startswith("fetched-")]
        for gateway in (fast, chain)
    ]
    assert len(lines[0]) == 9
    assert lines[0] == lines[1]
    counts = [requests_counted(gateway) for gateway in (fast, chain)]
    assert counts[0] == counts[1]


def across_simulators(answer: RawResponse, gateway: Gateway) -> tuple[int, dict[str, str], bytes]:
    """``comparable``, for answers of two gateways whose simulators differ only in their URL
    and object-storage key (inside cover links): those taken out of the body, and with them the
    body's ETag and length (the ETag's form is kept: gzip or not)."""
    status, headers, body = comparable(answer)
    etag, length = headers.pop("etag", None), headers.pop("content-length", None)
    headers["etag-form"] = "none" if etag is None else "gzip" if etag.endswith('-gzip"') else "plain"
    headers["has-length"] = str(length is not None)
    body = _COVER_SIGNATURE.sub(b"Signature=SIGNED", body.replace(gateway.simulator.base_url.encode(), b"SIMULATOR"))
    return status, headers, body


def timeless(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in without_timing(record).items() if k != "upstream_duration_ms"}


def requests_counted(gateway: Gateway) -> dict[str, float]:
    counted = {}
    for family in gateway.registry.collect():
        if family.name in ("metastudio_gateway_http_requests", "metastudio_gateway_cache_results"):
            counted.update(
                {f"{s.name}{sorted(s.labels.items())}": s.value for s in family.samples if s.name.endswith("_total")}
            )
    return counted


async def test_requests_behind_an_answer_being_fetched_wait_and_keep_their_order(gateway: Gateway) -> None:
    """A slow miss answered by the connection, then 1,000 hits in the same writes (more than
    the connection holds before it stops reading): every answer arrives, in order, none of
    them through the chain."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    prepared = chain_responses(gateway)
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.3, remaining=1))
    requests = [http_request("/v1/training-jobs?limit=6", X_Request_Id="slow")]
    requests += [http_request("/v1/training-jobs?limit=5", X_Request_Id=f"h{number}") for number in range(1000)]
    assert len(b"".join(requests)) > 65536
    responses = await asyncio.wait_for(exchange(gateway, requests), timeout=20)
    assert [r.headers["x-request-id"] for r in responses] == ["slow"] + [f"h{number}" for number in range(1000)]
    assert [r.headers["x-cache"] for r in responses[:2]] == ["MISS", "HIT"]
    assert prepared == []


async def test_an_answer_being_fetched_is_sent_before_a_graceful_shutdown_closes(gateway: Gateway) -> None:
    """Shutdown waits for an answer the connection is fetching (within its timeout), as aiohttp
    waits for its handlers, and closes the connection after it."""
    server = gateway.client.runner.server
    assert server is not None
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.3, remaining=1))
    reader, writer = await connect(gateway)
    try:
        writer.write(http_request("/v1/training-jobs?limit=5"))
        await asyncio.sleep(0.1)  # the miss is under way
        shutdown = asyncio.create_task(server.shutdown(5))
        response = await asyncio.wait_for(read_response(reader), timeout=5)
        await shutdown
        assert await asyncio.wait_for(reader.read(), timeout=1) == b""
    finally:
        writer.close()
    assert (response.status, response.headers["x-cache"]) == (200, "MISS")


async def test_requests_held_behind_an_answer_being_fetched_are_not_served_once_shutdown_starts(
    gateway: Gateway,
) -> None:
    """Shutdown while a miss is fetched, a second miss pipelined behind it: the first is sent,
    the second is neither fetched nor logged (aiohttp answers nothing after shutdown starts).
    The runner's cleanup closes every connection before its shutdown; ``Server.shutdown`` alone
    must not serve them either."""
    await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    server = gateway.client.runner.server
    assert server is not None
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.3, remaining=1))
    calls = gateway.upstream_calls
    reader, writer = await connect(gateway)
    try:
        writer.write(
            http_request("/v1/training-jobs?limit=6", X_Request_Id="miss")
            + http_request("/v1/training-jobs?limit=9", X_Request_Id="held-miss")
        )
        await asyncio.sleep(0.1)  # the first miss is under way
        shutdown = asyncio.create_task(server.shutdown(5))
        first = await asyncio.wait_for(read_response(reader), timeout=5)
        assert await asyncio.wait_for(reader.read(), timeout=2) == b""
        await shutdown
    finally:
        writer.close()
    await asyncio.sleep(0.3)  # a second fetch, had it started, would have ended meanwhile
    assert first.headers["x-request-id"] == "miss"
    assert gateway.upstream_calls == calls + 1
    assert b"held-miss" not in gateway.log.getvalue()


async def test_a_client_leaving_while_its_answer_is_fetched_loses_nothing_else(gateway: Gateway) -> None:
    """The client closes while its miss is fetched: the fetch still ends and stores the page
    (the next request is a hit), and nothing fails."""
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.2, remaining=1))
    _reader, writer = await connect(gateway)
    writer.write(http_request("/v1/training-jobs?limit=5"))
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.sleep(0.4)
    response = await gateway.client.get("/v1/training-jobs?limit=5", headers=ACME)
    assert (response.status, response.headers["X-Cache"]) == (200, "HIT")
    assert gateway.upstream_calls == 1
    assert not [r for r in gateway.log_records() if r.get("event") == "unhandled_exception"]


async def test_a_connection_waiting_for_a_fetched_answer_is_not_idle(make_gateway: GatewayFactory) -> None:
    """A miss that takes longer than the keep-alive timeout (0.2 s, the miss 0.6 s) keeps its
    connection: the answer arrives, and only then does the idle timer run."""
    gateway = await make_gateway(runner_options={"keepalive_timeout": 0.2})
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.6, remaining=1))
    reader, writer = await connect(gateway)
    try:
        writer.write(http_request("/v1/training-jobs?limit=5"))
        response = await asyncio.wait_for(read_response(reader), timeout=5)
        assert (response.status, response.headers["x-cache"]) == (200, "MISS")
        writer.write(http_request("/v1/training-jobs?limit=5"))
        assert (await asyncio.wait_for(read_response(reader), timeout=5)).headers["x-cache"] == "HIT"
        assert await asyncio.wait_for(reader.read(), timeout=2) == b""  # closed once idle
    finally:
        writer.close()


async def test_a_failure_building_a_fetched_answer_gets_the_chains_500_and_one_token(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If building a miss's answer raises after the fetch, the request gets the chain's 500
    envelope (the log names the exception's type and place only), the request pipelined behind
    it is answered from what the fetch stored, and each took one rate-limit token (a burst of 2
    lets both through)."""
    import gateway.fastpath.hits as hits

    gateway = await make_gateway(rate_limit=RateLimitSettings(requests_per_second=1, burst=2))
    calls = {"n": 0}
    real_represent = hits.represent

    def failing_once(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("secret detail that must not be logged")
        return real_represent(*args)

    monkeypatch.setattr(hits, "represent", failing_once)
    prepared = chain_responses(gateway)
    requests = [http_request("/v1/training-jobs?limit=5", X_Request_Id=f"f{number}") for number in range(2)]
    responses = await asyncio.wait_for(exchange(gateway, requests), timeout=5)
    assert [(r.status, r.headers["x-request-id"]) for r in responses] == [(500, "f0"), (200, "f1")]
    assert responses[0].headers["cache-control"] == "no-store"
    assert orjson.loads(responses[0].body)["error"]["request_id"] == "f0"
    assert responses[1].headers["x-cache"] == "HIT"
    assert prepared == []
    assert gateway.upstream_calls == 1
    event = next(r for r in gateway.log_records() if r.get("event") == "unhandled_exception")
    assert event["error"] == "RuntimeError"
    assert "secret detail" not in str(event)
    assert [r["status"] for r in gateway.log_records() if r.get("request_id") in ("f0", "f1") and "status" in r] == [
        500,
        200,
    ]


async def test_a_load_cancelled_under_a_fetched_answer_closes_the_connection(gateway: Gateway) -> None:
    """The service closing its loads (as at the app's cleanup) while an answer is fetched: there
    is nothing to send, so the connection is closed at once, as aiohttp closes one whose handler
    is cancelled; it does not hang until the keep-alive timeout."""
    gateway.simulator.state.faults.append(Fault("latency", seconds=2, remaining=1))
    reader, writer = await connect(gateway)
    try:
        writer.write(http_request("/v1/training-jobs?limit=5") + http_request("/v1/training-jobs?limit=6"))
        await asyncio.sleep(0.2)  # the miss is under way
        await gateway.app[SERVICE]._flights.close()
        assert await asyncio.wait_for(reader.read(), timeout=1) == b""
    finally:
        writer.close()


async def test_an_answer_not_fetched_within_the_shutdown_grace_is_called_off(gateway: Gateway) -> None:
    """A shutdown whose grace (0.2 s) ends before the fetched answer (0.6 s) closes the
    connection without an answer, returns normally, and logs no line for the request, as
    aiohttp cancels a handler past the grace."""
    server = gateway.client.runner.server
    assert server is not None
    gateway.simulator.state.faults.append(Fault("latency", seconds=0.6, remaining=1))
    reader, writer = await connect(gateway)
    try:
        writer.write(http_request("/v1/training-jobs?limit=5", X_Request_Id="late"))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(server.shutdown(0.2), timeout=2)
        assert await asyncio.wait_for(reader.read(), timeout=1) == b""
    finally:
        writer.close()
    await asyncio.sleep(0.8)  # the load ends meanwhile
    assert not [r for r in gateway.log_records() if r.get("request_id") == "late"]


async def test_a_failure_after_a_fetched_answer_is_sent_closes_the_connection(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the connection's own work after writing a fetched answer fails (here the batch work
    of the log), the answer has gone out, the connection is closed rather than left with the
    requests behind it unread, and the failure is logged by type and place only."""
    responder = gateway.app[HIT_RESPONDER]

    def settle_failing_after_the_answer() -> None:  # called once a fetched answer is written
        raise OSError("secret detail that must not be logged")

    monkeypatch.setattr(responder, "settle", settle_failing_after_the_answer)
    reader, writer = await connect(gateway)
    try:
        writer.write(http_request("/v1/training-jobs?limit=5") + http_request("/v1/training-jobs?limit=6"))
        first = await asyncio.wait_for(read_response(reader), timeout=5)
        assert await asyncio.wait_for(reader.read(), timeout=1) == b""
    finally:
        writer.close()
    assert (first.status, first.headers["x-cache"]) == (200, "MISS")
    event = next(r for r in gateway.log_records() if r.get("event") == "unhandled_exception")
    assert event["error"] == "OSError"
    assert "secret detail" not in str(event)
