"""The response cache: entries, the key schema, the freshness rule (pure), the local store,
single-flight loading and per-key failure backoff, behind small protocols a shared store implements too."""
