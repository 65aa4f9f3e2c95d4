"""Request ids for headers and log lines, shared by the handler chain and the hit path."""

from __future__ import annotations

import itertools
import re
import secrets

_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


class RequestIds:
    """Request ids: the caller's X-Request-Id when it is sane, else a new one made of a random
    per-process prefix and a counter (unique per process start, and cheap)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def of(self, given: str | None) -> str:
        """The id for a request that sent ``given`` as its X-Request-Id (``None`` if none)."""
        if given is not None and _CLIENT_REQUEST_ID.fullmatch(given):
            return given
        return f"{self._prefix}{next(self._counter):08x}"
