"""Who is calling and may they pass now: API keys (and JWTs), rate limits, request limits.

One synchronous API (``gateway.admission.gate``) for both the fast path and the handler
chain: it runs inside the connection's ``data_received``, so it never waits on the network.
Anything shared or remote sits behind a local synchronous front fed in the background."""
