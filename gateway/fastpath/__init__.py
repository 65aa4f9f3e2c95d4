"""Plain cache hits answered from the connection, before aiohttp builds a request. The only code
that touches aiohttp internals; a start-up capability check falls back to the stock runner."""
