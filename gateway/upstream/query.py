"""The upstream list call's query, as the gateway builds, signs and sends it."""

from __future__ import annotations

UpstreamQuery = tuple[tuple[str, str], ...]
"""Query parameters (name, value) in the order they are sent and signed."""
