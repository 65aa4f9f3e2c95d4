"""Bodies of the gateway's own outbound calls (credential services, JWKS), read to a bound."""

from __future__ import annotations

import aiohttp


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """``response``'s body, or ``None`` once it has passed ``limit`` bytes (reading stops there:
    an endpoint that answers without end costs ``limit`` bytes, not all the memory there is)."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
