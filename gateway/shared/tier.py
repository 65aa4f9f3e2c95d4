"""The one Redis connection of the shared tier, its breaker, its heartbeat and its Pub/Sub listener.

Every Redis call of every shared component goes through ``RedisTier.run``, which bounds it by
``operation_timeout_seconds`` and counts it. The first failure opens the breaker: from then on
``run`` refuses at once (``SharedUnavailable``) and every component acts locally, until the
heartbeat (once a second, bypassing the breaker) gets an answer again. So a frozen Redis costs
each request at most one operation timeout, and sharing resumes about a second after Redis does.

The Pub/Sub listener pings Redis after each second without a message, and subscribes again on a
new connection when it has heard nothing, pong or message, for ``HEARTBEAT_LAPSE_SECONDS``. A
subscribed connection otherwise only reads: one that Redis (or a NAT, load balancer or failover
in between) dropped without the replica hearing it would stay silent for good, and an idle one
is what such middleboxes drop.

redis-py's defaults are wrong for a cache in front of a cache: 5 s socket timeouts, retries with
backoff, and an asyncio pool that raises past its size. Here the socket, connect and pool-wait
timeouts are all the operation timeout, retries are off (the caller has a local answer; retrying
only makes it later), and the pool blocks (bounded) rather than raising. Scripts go through
redis-py's ``Script``, which answers a ``NOSCRIPT`` (Redis restarted, scripts gone) by loading
the script again within the same call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from gateway.config.settings import SharedSettings
from gateway.observability.metrics import Metrics
from gateway.shared.keys import KeySpace
from gateway.tls import tls_error_in, tls_reason

_T = TypeVar("_T")
logger = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
"""What a Redis call raises when Redis is not there: redis-py's cluster errors (no node
reachable, a slot not covered) are not ``RedisError``s."""
_GONE = (*REDIS_ERRORS, TimeoutError)
"""What ends a subscription or a close when Redis is not there or does not answer."""

MAX_CONNECTIONS = 64
"""Bound on this replica's Redis connections (per node in a cluster); one is the Pub/Sub listener."""
HEARTBEAT_SECONDS = 1.0
"""How often a replica says it is alive (and, while the breaker is open, probes Redis)."""
HEARTBEAT_LAPSE_SECONDS = 5.0
"""A replica that has not said so for this long is no longer counted; a listener that has heard
nothing for this long subscribes again."""
LISTEN_RETRY_SECONDS = 1.0

_HEARTBEAT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""


def describe(settings: SharedSettings) -> str:
    """The shared tier in a few words for ``check-config``: where Redis is, never its password."""
    if not settings.redis_url:
        return "shared tier off (this replica on its own)"
    url = urlsplit(settings.redis_url)
    where = f"unix socket {url.path}" if url.scheme == "unix" else f"{url.hostname}:{url.port or 6379}"
    kind = "Redis Cluster" if settings.cluster else "Redis"
    tls = " over TLS" if url.scheme == "rediss" else ""
    return f"shared tier on {kind} at {where}{tls}, key prefix '{settings.key_prefix}'"


class SharedUnavailable(Exception):
    """Redis did not answer in time, refused, or the breaker is open: act locally."""


def _client(settings: SharedSettings) -> Redis | RedisCluster:
    timeout = settings.operation_timeout_seconds
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.cluster:
        return RedisCluster.from_url(settings.redis_url, max_connections=MAX_CONNECTIONS, **options)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=MAX_CONNECTIONS, timeout=timeout, **options
    )
    # Connections take their retry (none) from the pool's options. ``from_pool``: the client owns
    # the pool, so closing it closes the connections (``Redis(connection_pool=...)`` would not).
    return Redis.from_pool(pool)


def _why(error: BaseException | None) -> str:
    """What a failed Redis call met, in words without data: the error's kind, and OpenSSL's
    reason when TLS failed (a certificate not trusted is the first thing to tell from an outage)."""
    if isinstance(error, TimeoutError | RedisTimeout):
        return "timeout"
    tls = tls_error_in(error)
    if tls is not None:
        return f"TLS failed: {tls_reason(tls)}"
    return f"error ({type(error).__name__})"


class RedisTier:
    """The shared tier's connection: bounded calls, one breaker, heartbeat, replica count, hints."""

    def __init__(self, settings: SharedSettings, metrics: Metrics) -> None:
        self.keys = KeySpace(settings.key_prefix)
        self.replica_id = secrets.token_hex(8)
        self.replicas_seen = settings.expected_replicas
        """Live replicas at the last heartbeat (this one included), or the replicas expected
        until one is heard: the local rate-limit share. (Counted as 1 until stop 32, so replicas
        started while Redis was down each admitted every tenant's whole limit.)"""
        self._timeout = settings.operation_timeout_seconds
        self._metrics = metrics
        self._client = _client(settings)
        self._up = False
        self._handlers: dict[str, Callable[[bytes], None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        """The heartbeat and the listener: the background work that never ends by itself."""
        self._heartbeat = self._client.register_script(_HEARTBEAT)
        metrics.shared_tier_up.set_function(lambda: 1.0 if self._up else 0.0)

    @property
    def up(self) -> bool:
        """Whether Redis answered last time it was asked (the breaker is closed)."""
        return self._up

    def script(self, source: str) -> AsyncScript:
        """A Lua script to call through ``run``."""
        return self._client.register_script(source)

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish ``message`` on ``channel`` (call it through ``run``)."""
        await self._client.publish(channel, message)

    def on_message(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Call ``handler`` with each message published on ``channel`` (register before ``start``)."""
        self._handlers[channel] = handler

    async def run(self, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call()`` against Redis, bounded by the operation timeout and counted by ``operation``;
        ``SharedUnavailable`` if the breaker is open or the call fails (which opens it)."""
        if not self._up:
            self._metrics.shared_tier_operations.labels(operation, "skipped").inc()
            raise SharedUnavailable
        return await self._attempt(operation, call)

    async def _attempt(self, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
        started = time.perf_counter()
        result = "ok"
        try:
            async with asyncio.timeout(self._timeout):
                return await call()
        except (TimeoutError, RedisTimeout) as exc:
            result = "timeout"
            raise SharedUnavailable from exc
        except REDIS_ERRORS as exc:
            result = "error"
            raise SharedUnavailable from exc
        finally:
            self._metrics.shared_tier_duration.labels(operation).observe(time.perf_counter() - started)
            self._metrics.shared_tier_operations.labels(operation, result).inc()
            if result != "ok" and self._up:
                self._up = False
                logger.warning("shared tier down (Redis %s on %s): this replica acts on its own", result, operation)

    def spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``work`` in the background, kept until done (``close`` lets it finish, within
        bounds); a ``SharedUnavailable`` it raises is expected (the breaker counted it) and
        dropped."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if not isinstance(error, SharedUnavailable | None):
            logger.error("shared tier task failed", exc_info=error)

    async def start(self) -> None:
        """One heartbeat (bounded: Redis being down does not delay start-up; saying why it
        failed), then the heartbeat and the Pub/Sub listener in the background."""
        failure = await self._beat()
        if failure is not None:
            logger.warning(
                "shared tier not reached at start-up (Redis %s): this replica acts on its own until it answers", failure
            )
        self._loops.append(self.spawn(self._beat_forever()))
        if self._handlers:
            self._loops.append(self.spawn(self._listen_forever()))

    async def close(self) -> None:
        """Stop the heartbeat and the listener; let the writes already under way finish (a fill,
        a give-up, a cover publish, a lease: one bounded call each, so the other replicas get
        what this one loaded instead of waiting out its lease and loading it again); leave the
        replica count; close the connections."""
        for loop in self._loops:
            loop.cancel()
        writes = self._tasks.difference(self._loops)
        if writes:
            await asyncio.wait(writes, timeout=self._timeout * 2)
        with contextlib.suppress(SharedUnavailable):
            await self.run("leave", lambda: self._client.zrem(self.keys.replicas, self.replica_id))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(*_GONE):
            async with asyncio.timeout(self._timeout * 5):
                await self._client.aclose()

    async def _beat(self) -> str | None:
        """One heartbeat; why it failed (for the log), or ``None``."""
        was_up = self._up
        try:
            count = await self._attempt(
                "heartbeat",
                lambda: self._heartbeat(
                    keys=[self.keys.replicas], args=[self.replica_id, int(HEARTBEAT_LAPSE_SECONDS * 1000)]
                ),
            )
        except SharedUnavailable as unavailable:
            return _why(unavailable.__cause__)
        self.replicas_seen = max(1, int(count))
        self._up = True
        if not was_up:
            logger.info("shared tier up: %d replica(s) share Redis", self.replicas_seen)
        return None

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._beat()
            except Exception:  # a bug: said, and the heartbeat goes on (else this replica never shares again)
                logger.exception("shared tier heartbeat failed")

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._listen(pubsub)
            except _GONE:
                pass  # Redis went away: the breaker and heartbeat say so; listen again later
            except Exception:  # a bug: said, and the listener listens again
                logger.exception("shared tier listener failed")
            finally:
                with contextlib.suppress(*_GONE):
                    async with asyncio.timeout(self._timeout):
                        await pubsub.aclose()
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def _listen(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(self._timeout * 10):
            await pubsub.subscribe(*self._handlers)
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=HEARTBEAT_SECONDS)
            if message is None:
                if loop.time() - heard > HEARTBEAT_LAPSE_SECONDS:
                    raise TimeoutError("the Pub/Sub connection went silent")
                await pubsub.ping()  # answered by a pong message
                continue
            heard = loop.time()
            if message.get("type") != "message":
                continue
            channel = message["channel"]
            handler = self._handlers.get(channel.decode() if isinstance(channel, bytes) else str(channel))
            if handler is not None:
                handler(message["data"])
