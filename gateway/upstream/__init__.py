"""The MetaStudio client: pure SDK-HMAC-SHA256 signing, the list call with deadlines, budgeted
retries and a circuit breaker; errors translated once into ``gateway.errors``."""
