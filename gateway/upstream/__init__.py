"""The MetaStudio client: each attempt authenticated by pure SDK-HMAC-SHA256 signing (AK/SK) or an
IAM token (``X-Auth-Token``), the list call with deadlines, budgeted retries and a circuit breaker;
errors translated once into ``gateway.errors``."""
