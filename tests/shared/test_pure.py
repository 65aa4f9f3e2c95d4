"""The shared tier's pure parts: the key namespace, stored entries, the [shared] settings and the
leased rate-limit allowance's bookkeeping."""

from __future__ import annotations

import asyncio
import hashlib
import math
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.admission.rate_limit import (
    COLD_AFTER_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    Allowance,
    RateLimit,
    credit_allowed,
    lease_size,
)
from gateway.cache.backoff import KeyBackoff
from gateway.cache.entry import CacheEntry, CoverLink
from gateway.cache.keys import job_key, list_key
from gateway.clock import ManualClock
from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.shared.backoff import LEARNED_MAX_SECONDS, SharedBackoff
from gateway.shared.codec import decode_covers, decode_entry, encode_covers, encode_entry
from gateway.shared.keys import FORMAT, KeySpace
from gateway.shared.rate_limit import SharedRateLimiter

TENANT = (
    f'[[tenants]]\nid = "acme"\napp_user_id = "acme-web"\napi_key_sha256 = ["{hashlib.sha256(b"k").hexdigest()}"]\n'
)
ENV = {"METASTUDIO_PROJECT_ID": "proj-1"}
PASSWORD = "pure-test-redis-password"


K = job_key("acme", "k")


def _entry(gzip_body: bytes | None = b"\x1f\x8b zipped") -> CacheEntry:
    return CacheEntry(
        body=b'{"jobs": []}',
        etag='"abc"',
        fetched_at=1_700_000_000.25,
        fresh_until=1_700_000_060.25,
        keep_until=1_700_003_600.25,
        covers={"job-1": CoverLink("https://obs.example/c.png?Expires=1700086400&Signature=x", 1_700_086_400.0)},
        earliest_cover_expiry=1_700_086_400.0,
        gzip_body=gzip_body,
    )


def test_every_key_starts_with_the_prefix_and_holds_the_tenant_in_a_hash_tag() -> None:
    """Entry, lease, backoff and bucket keys of a tenant share its hash tag (one Cluster slot) and the format."""
    space = KeySpace("mgw")
    entry = space.entry(list_key("acme", (("offset", "0"), ("limit", "10"))))
    keys = [entry, space.lease(entry), space.backoff(entry), space.rate("acme")]
    assert all(key.startswith(f"mgw:v{FORMAT}:{{acme}}:") for key in keys)
    assert space.replicas.startswith("mgw:")


def test_entry_keys_differ_by_tenant_kind_and_subject_but_never_hold_the_subject() -> None:
    """Two queries, a job and another tenant give four keys; what the caller asked for is hashed."""
    space = KeySpace("p")
    keys = {
        space.entry(list_key("acme", (("name", "secret-project"),))),
        space.entry(list_key("acme", (("name", "other"),))),
        space.entry(job_key("acme", "secret-project")),
        space.entry(list_key("globex", (("name", "secret-project"),))),
    }
    assert len(keys) == 4
    assert not any("secret-project" in key for key in keys)
    assert space.entry(job_key("acme", "j")) == KeySpace("p").entry(job_key("acme", "j"))


@pytest.mark.parametrize("gzip_body", [b"\x1f\x8b zipped", None])
def test_a_stored_entry_reads_back_unchanged(gzip_body: bytes | None) -> None:
    """Bodies, ETag, times and cover links survive the round trip, with or without a gzip body."""
    entry = _entry(gzip_body)
    assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x05{}", encode_entry(_entry())[:-3], b"\x00\x00\x00\x02[]"])
def test_anything_else_is_not_an_entry(data: bytes) -> None:
    """Truncated or foreign bytes are a ValueError (the caller treats them as a miss)."""
    with pytest.raises(ValueError, match="not a stored cache entry"):
        decode_entry(data)


def test_a_covers_message_reads_back_unchanged() -> None:
    """Tenant and links survive; garbage is a ValueError."""
    links = {"j": CoverLink("https://obs.example/j.png", 1.5)}
    assert decode_covers(encode_covers("acme", links)) == ("acme", links)
    with pytest.raises(ValueError, match="not a covers message"):
        decode_covers(b"[1]")


def test_a_backoff_heard_from_redis_is_said_as_this_replica_keeps_it() -> None:
    """Another replica's backoff read from Redis (its key's time left) is kept at most five
    minutes here, and callers are told that, not a value no build writes (a key left without an
    expiry by hand: 31 years said in Retry-After for a wait that ends in five minutes)."""
    clock = ManualClock()
    backoff = SharedBackoff(KeyBackoff(clock), clock)
    error = backoff.learn(K, "UpstreamUnavailable", 10**9)
    assert error.retry_after_seconds == LEARNED_MAX_SECONDS
    clock.advance(LEARNED_MAX_SECONDS)
    assert backoff.blocked(K) is None


def test_shared_settings_default_to_no_redis(tmp_path: Path) -> None:
    """Without [shared] the gateway stays on its own: no URL, prefix mgw, 100 ms operations."""
    config = tmp_path / "c.toml"
    config.write_text(TENANT)
    shared = load_settings(ENV, str(config)).shared
    assert (shared.redis_url, shared.cluster, shared.key_prefix, shared.operation_timeout_seconds) == (
        "",
        False,
        "mgw",
        0.1,
    )


def test_redis_url_from_a_file_variable_and_never_in_repr(tmp_path: Path) -> None:
    """GATEWAY_REDIS_URL_FILE is read (a mounted Secret); the URL's password is not in the settings' repr."""
    config, secret = tmp_path / "c.toml", tmp_path / "redis-url"
    config.write_text(TENANT + '[shared]\ncluster = true\nkey_prefix = "gw-a"\n')
    secret.write_text(f"rediss://:{PASSWORD}@redis.example:6380/0\n")
    settings = load_settings({**ENV, "GATEWAY_REDIS_URL_FILE": str(secret)}, str(config))
    assert settings.shared.redis_url == f"rediss://:{PASSWORD}@redis.example:6380/0"
    assert settings.shared.cluster and settings.shared.key_prefix == "gw-a"
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("env", "shared", "named"),
    [
        ({"GATEWAY_REDIS_URL": "http://redis:6379"}, "", "GATEWAY_REDIS_URL"),
        ({"GATEWAY_REDIS_URL": "redis://a", "GATEWAY_REDIS_URL_FILE": "/x"}, "", "both set"),
        ({"GATEWAY_REDIS_URL_FILE": "/nonexistent/url"}, "", "GATEWAY_REDIS_URL_FILE"),
        ({}, 'key_prefix = "a{b}"', "shared.key_prefix"),
        ({}, "operation_timeout_seconds = 0", "shared.operation_timeout_seconds"),
        # URLs redis-py cannot connect with: they passed check-config and failed serve with a traceback
        ({"GATEWAY_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:notaport"}, "", "GATEWAY_REDIS_URL: its port is not"),
        ({"GATEWAY_REDIS_URL": f"redis://:{PASSWORD}@redis:99999"}, "", "GATEWAY_REDIS_URL: its port is not"),
        ({"GATEWAY_REDIS_URL": "rediss://[::1"}, "", "GATEWAY_REDIS_URL: an unclosed '['"),
        # a password with an unencoded '/', '?' or '#': urllib reads it as the port, and quoted it
        ({"GATEWAY_REDIS_URL": f"redis://:{PASSWORD}/x@redis:6379/0"}, "", "GATEWAY_REDIS_URL: its port is not"),
        ({"GATEWAY_REDIS_URL": f"redis://:{PASSWORD}#x@redis:6379/0"}, "", "GATEWAY_REDIS_URL: its port is not"),
        ({"GATEWAY_REDIS_URL": "redis://redis/?socket_timeout=soon"}, "", "Invalid value for 'socket_timeout'"),
        ({"GATEWAY_REDIS_URL": "unix:///run/redis.sock"}, "cluster = true", "shared.cluster: a Redis Cluster is"),
    ],
)
def test_bad_shared_settings_name_the_key(tmp_path: Path, env: dict[str, str], shared: str, named: str) -> None:
    """A wrong scheme, both URL variables, an unreadable file, a prefix that would break hash tags,
    a zero timeout, a URL redis-py cannot use, a cluster on a unix socket; never the password."""
    config = tmp_path / "c.toml"
    config.write_text(TENANT + "[shared]\n" + shared + "\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({**ENV, **env}, str(config))
    assert named in str(raised.value)
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize("contents", ["", "\n"])
def test_an_empty_redis_url_file_is_refused_not_taken_for_no_shared_tier(tmp_path: Path, contents: str) -> None:
    """A Secret mounted with an empty value: refused, naming the file, as the other secret files
    are; it quietly left the replica on its own (no shared cache, single flight or rate limits)."""
    config, secret = tmp_path / "c.toml", tmp_path / "redis-url"
    config.write_text(TENANT)
    secret.write_text(contents)
    with pytest.raises(ConfigError) as raised:
        load_settings({**ENV, "GATEWAY_REDIS_URL_FILE": str(secret)}, str(config))
    assert raised.value.problems == [f"GATEWAY_REDIS_URL_FILE: {secret} is empty"]


@pytest.mark.parametrize("secret_file", ["missing", "a directory", "not UTF-8"])
def test_an_unreadable_redis_url_file_is_reported_with_every_other_problem(tmp_path: Path, secret_file: str) -> None:
    """GATEWAY_REDIS_URL_FILE that cannot be read is one problem among the others (a bad key in
    the file, a bad environment value), all in the one error, not a first error on its own."""
    config, secret = tmp_path / "c.toml", tmp_path / "redis-url"
    config.write_text(TENANT + '[shared]\nkey_prefix = "a{b}"\n')
    if secret_file == "a directory":
        secret.mkdir()
    elif secret_file == "not UTF-8":
        secret.write_bytes(b"redis://\xff\xfe")
    env = {**ENV, "GATEWAY_REDIS_URL_FILE": str(secret), "GATEWAY_CACHE_TTL_SECONDS": "-1"}
    with pytest.raises(ConfigError) as raised:
        load_settings(env, str(config))
    problems = raised.value.problems
    assert any(
        problem.startswith(f"GATEWAY_REDIS_URL_FILE: {secret} is not UTF-8")
        or problem.startswith(f"GATEWAY_REDIS_URL_FILE: cannot read {secret}")
        for problem in problems
    )
    assert any(problem.startswith("shared.key_prefix") for problem in problems)
    assert any(problem.startswith("GATEWAY_CACHE_TTL_SECONDS") for problem in problems)


def test_both_redis_url_variables_and_no_config_file_are_reported_together() -> None:
    """Without a config file, both URL variables set is reported after the missing file, with the rest."""
    env = {**ENV, "GATEWAY_REDIS_URL": "redis://a", "GATEWAY_REDIS_URL_FILE": "/x"}
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    problems = raised.value.problems
    assert problems[:2] == [
        "no config file given (--config or GATEWAY_CONFIG)",
        "GATEWAY_REDIS_URL and GATEWAY_REDIS_URL_FILE are both set: set one",
    ]
    assert len(problems) > 2  # the missing tenants too


def test_credit_is_each_replicas_share_of_the_burst() -> None:
    """From a full bucket, all replicas' credit together is the burst (at least one request each)."""
    assert credit_allowed(RateLimit(per_second=20, burst=100), replicas=3) == 33
    assert credit_allowed(RateLimit(per_second=20, burst=2), replicas=3) == 1


def test_a_lease_is_small_and_never_zero() -> None:
    """About 50 ms of the rate, at most a tenth of each replica's share of the burst, at least one."""
    assert lease_size(RateLimit(per_second=1000, burst=1000), replicas=2) == 50
    assert lease_size(RateLimit(per_second=1000, burst=100), replicas=2) == 5
    assert lease_size(RateLimit(per_second=20, burst=10), replicas=3) == 1


def test_a_cold_allowance_admits_on_credit_and_the_lease_pays_first() -> None:
    """The first requests on a replica pass while the first lease is under way; its grant pays them back."""
    allowance = Allowance()
    assert [allowance.take(0.0, credit=2) for _ in range(3)] == [0, 0, 1]
    asked = allowance.want(0.0, size=2)
    assert asked == 4
    allowance.leased(0.01, asked, granted=3, next_token_in=0.5)
    assert allowance.tokens == 1 and allowance.debt == 0
    assert allowance.take(0.02, credit=2) == 0


def test_a_refused_lease_stops_asking_until_the_next_token_is_due() -> None:
    """The bucket said no for 1.5 s: requests wait, no lease is asked before then, then one is,
    and near the limit nothing passes on credit."""
    allowance = Allowance(last_lease_at=0.0)
    allowance.leased(1.0, asked=2, granted=0, next_token_in=1.5)
    assert allowance.take(1.1, credit=2) == 2
    assert allowance.want(1.1, size=2) == 0
    assert allowance.take(2.6, credit=2) == 1
    assert allowance.want(2.6, size=2) == 2


def test_leased_tokens_are_dropped_when_old_and_topped_up_when_low() -> None:
    """Tokens unused for the lifetime are gone; a low allowance asks for more, a full one does not."""
    allowance = Allowance(last_lease_at=0.0)
    allowance.leased(0.0, asked=4, granted=3, next_token_in=0.1)
    assert allowance.want(0.1, size=4) == 0
    assert [allowance.take(0.1, credit=4) for _ in range(2)] == [0, 0]
    assert allowance.want(0.1, size=4) == 4
    assert allowance.take(TOKEN_LIFETIME_SECONDS + 0.5, credit=4) == 1
    assert COLD_AFTER_SECONDS > TOKEN_LIFETIME_SECONDS + 0.5


def test_with_plenty_in_the_bucket_a_dry_allowance_admits_on_credit() -> None:
    """After a lease granted in full, a burst that empties the allowance passes while the next lease runs."""
    allowance = Allowance(last_lease_at=0.0)
    allowance.leased(0.0, asked=2, granted=2, next_token_in=0.0)
    assert [allowance.take(0.1, credit=2) for _ in range(5)] == [0, 0, 0, 0, 1]
    assert allowance.want(0.1, size=2) == 4


class _SilentTier:
    """A tier that is up, sees ``replicas_seen`` replicas and never answers a lease."""

    up = True

    def __init__(self, replicas: int) -> None:
        self.replicas_seen = replicas

    def script(self, _source: str) -> None:
        return None

    def spawn(self, coroutine: Any) -> None:
        coroutine.close()


def test_the_shared_limiter_follows_the_replica_count_for_its_credit() -> None:
    """With no lease answered, a replica admits its share of the burst on credit: all of it
    alone, a quarter once it sees four replicas (the share is worked out again when the count
    changes, not kept from the first request)."""
    tier = _SilentTier(replicas=1)
    limiter = SharedRateLimiter({"acme": RateLimit(per_second=20, burst=100)}, cast(Any, tier), ManualClock())
    assert [limiter.retry_after("acme") for _ in range(10)] == [0] * 10
    tier.replicas_seen = 4
    decisions = [limiter.retry_after("acme") for _ in range(20)]
    assert decisions == [0] * 15 + [1] * 5  # 25 on credit in all, 10 of them taken already


class _RefusingTier(_SilentTier):
    """A tier whose bucket is empty: each lease is refused, the next token due in 1 s."""

    keys = KeySpace("t")

    def __init__(self) -> None:
        super().__init__(replicas=1)
        self.leases = 0
        self.tasks: set[asyncio.Future[Any]] = set()

    def script(self, _source: str) -> Any:
        async def take(*, keys: list[str], args: list[object]) -> list[int]:
            self.leases += 1
            return [0, 1_000_000]

        return take

    async def run(self, _operation: str, call: Any) -> Any:
        return await call()

    def spawn(self, coroutine: Any) -> None:
        self.tasks.add(asyncio.ensure_future(coroutine))


class _GrantingTier(_RefusingTier):
    """A tier whose bucket, empty at first, holds one token ``next_token_at`` seconds on (on its
    manual clock), and none after it is taken."""

    def __init__(self, next_token_at: float) -> None:
        super().__init__()
        self.clock = ManualClock()
        self._due = self.clock.monotonic() + next_token_at
        self._taken = False

    def script(self, _source: str) -> Any:
        async def take(*, keys: list[str], args: list[object]) -> list[int]:
            self.leases += 1
            now = self.clock.monotonic()
            if self._taken or now < self._due:
                return [0, 1_000_000 if self._taken else math.ceil((self._due - now) * 1_000_000)]
            self._taken = True
            return [1, 1_000_000]

        return take


async def test_a_refused_tenant_is_asked_for_again_when_the_next_token_is_due_whatever_the_clock_did() -> None:
    """The shared bucket refuses a lease (the next token due in 1 s); the wall clock steps back an
    hour and half a second passes: the caller is told to wait a second, not an hour, and the
    replica asks Redis again when the token is due."""
    tier = _RefusingTier()
    clock = ManualClock()
    limiter = SharedRateLimiter({"acme": RateLimit(per_second=1, burst=1)}, cast(Any, tier), clock)
    assert limiter.retry_after("acme") == 0  # on credit, while the first lease is asked for
    await asyncio.sleep(0)
    assert tier.leases == 1
    clock.advance(-3600)
    clock.advance(0.5)
    assert limiter.retry_after("acme") == 1
    await asyncio.wait(tier.tasks, timeout=5)  # the lease set for the token's due time, 0.5 s on
    assert tier.leases == 2


async def test_a_caller_told_to_wait_finds_the_token_held_when_it_comes_back() -> None:
    """Refused while the bucket's next token is due in 0.6 s: the caller is told 1 s, the replica
    leases that token when it is due, and the caller coming back after the second is admitted.
    The lease was asked only when the caller came back, answered too late for it: refused again
    (Retry-After 1), so a client waiting as told got half its limit with several replicas."""
    tier = _GrantingTier(next_token_at=0.6)
    clock = tier.clock
    limiter = SharedRateLimiter({"acme": RateLimit(per_second=1, burst=1)}, cast(Any, tier), clock)
    assert limiter.retry_after("acme") == 0  # on credit: the first lease is refused
    await asyncio.sleep(0)
    told = limiter.retry_after("acme")
    assert told == 1
    clock.advance(told)  # the scheduled lease runs at the token's due time, within that second
    await asyncio.wait(tier.tasks, timeout=5)
    assert limiter.retry_after("acme") == 0
    assert tier.leases == 2


async def test_a_caller_refused_while_a_lease_is_under_way_finds_a_token_when_it_comes_back() -> None:
    """Refused while the replica's first lease is under way (its credit spent): told 1 s. That
    lease is refused (the next token due in 50 ms); the caller coming back after the second is
    admitted, as a lease was asked for it before it came back. Nothing leased for it: it was
    refused again (Retry-After 1), as the live test saw under load."""
    tier = _GrantingTier(next_token_at=0.05)
    clock = tier.clock
    limiter = SharedRateLimiter({"acme": RateLimit(per_second=20, burst=1)}, cast(Any, tier), clock)
    assert limiter.retry_after("acme") == 0  # on credit, the first lease asked
    told = limiter.retry_after("acme")  # the lease still under way
    assert told == 1
    await asyncio.sleep(0)
    assert tier.leases == 1  # refused: the next token is due in 50 ms
    clock.advance(told)
    await asyncio.wait(tier.tasks, timeout=5)
    assert tier.leases == 2
    assert limiter.retry_after("acme") == 0
