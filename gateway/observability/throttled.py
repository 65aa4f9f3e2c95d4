"""Warnings said when they first come and at most once a minute while they last.

A dependency's failure (a TLS reason, refused credentials, an upstream that does not isolate
tenants) is logged when it starts, not once per request it fails: ``ThrottledWarnings.warn``
logs a warning unless the same key was logged within the interval. Keys are few (reasons,
tenants); the memory of them is bounded all the same. ``forget`` ends a key's quiet, for a
failure that stopped (the next time it starts, it is said again).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable

from gateway.clock import Clock

WARNING_SECONDS = 60.0
"""A key's warning is logged at most this often while it lasts."""
KEYS_KEPT = 64


class ThrottledWarnings:
    """One logger's throttled warnings, each key on its own, on the monotonic clock."""

    def __init__(self, logger: logging.Logger, clock: Clock) -> None:
        self._logger = logger
        self._clock = clock
        self._said: dict[Hashable, float] = {}

    def warn(self, message: str, key: Hashable = None) -> None:
        """Log ``message`` unless ``key`` (the message itself by default) was said within
        ``WARNING_SECONDS``."""
        key = message if key is None else key
        said = self._said
        now = self._clock.monotonic()
        if now - said.get(key, -math.inf) >= WARNING_SECONDS:
            if len(said) >= KEYS_KEPT:
                said.clear()
            said[key] = now
            self._logger.warning("%s", message)

    def forget(self, key: Hashable) -> None:
        """The failure ``key`` stopped: say it again when it comes back."""
        self._said.pop(key, None)
