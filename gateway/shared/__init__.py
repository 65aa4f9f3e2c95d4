"""The shared tier: several replicas, one cache, one single-flight, one backoff and one rate limit
on Redis. Every class here implements a seam of a lower room (``cache.protocols``,
``admission.rate_limit.RateLimiter``) with a local front that answers synchronously, fed and
written in the background; ``tier.RedisTier`` is the one connection, breaker and key namespace
they all go through. Only ``gateway.app`` wires it, and only when ``[shared] redis_url`` is set.
"""
