"""Cover links, shared: every link a replica learns is published, and every replica keeps what
it hears in its local front, so ``/cover`` on any replica knows a link another replica's load
brought (and re-fetches only when no replica knows one outside the refresh margin). Links are
URLs the upstream signed, the same for every replica: no secret is published."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.cache.cover_links import LocalCoverLinks
from gateway.cache.entry import CoverLink
from gateway.clock import Clock
from gateway.jobs.covers import is_believable, is_usable_url
from gateway.shared.codec import decode_covers, encode_covers
from gateway.shared.tier import RedisTier


class SharedCoverLinks:
    """A ``CoverLinks`` whose local front hears every replica's links."""

    def __init__(self, tier: RedisTier, local: LocalCoverLinks, clock: Clock) -> None:
        self._tier = tier
        self._local = local
        self._clock = clock
        self._channel = tier.keys.covers_channel
        tier.on_message(self._channel, self._heard)

    def get(self, tenant_id: str, job_id: str) -> CoverLink | None:
        """The freshest link any replica told this one about, servable or not."""
        return self._local.get(tenant_id, job_id)

    def remember(self, tenant_id: str, covers: Mapping[str, CoverLink]) -> None:
        """Note the links a load just brought, here and (in the background) on every replica."""
        self._local.remember(tenant_id, covers)
        if covers and self._tier.up:
            message = encode_covers(tenant_id, dict(covers))
            self._tier.spawn(self._tier.run("publish_covers", lambda: self._tier.publish(self._channel, message)))

    def forget(self, tenant_id: str, job_ids: Iterable[str]) -> None:
        """Drop the links of jobs a load found without a cover, or gone, here only: another
        replica keeps the link it knows until a load of its own finds the same, or the link
        reaches the refresh margin (a link published later by a load that found it wins again)."""
        self._local.forget(tenant_id, job_ids)

    def _heard(self, data: bytes) -> None:
        try:
            tenant_id, covers = decode_covers(data)
        except ValueError:
            return
        now = self._clock.now()
        newer = {}
        for job_id, link in covers.items():
            # What no load of this build would have kept: a URL it could not hand out, an expiry
            # past or beyond what it believes (milliseconds for seconds, a buggy build's NaN).
            if not (now < link.expires_at and is_believable(link.expires_at, now) and is_usable_url(link.url)):
                continue
            known = self._local.get(tenant_id, job_id)
            if known is None or known.expires_at < link.expires_at:
                newer[job_id] = link
        self._local.remember(tenant_id, newer)
