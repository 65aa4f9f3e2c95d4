"""What a credential source hands out, and the pure rules for reading and renewing it.

* ``UpstreamAuth``: how one upstream attempt authenticates. ``Credentials`` (AK/SK, with a
  security token for temporary ones) are signed with; an ``IamToken`` is sent as
  ``X-Auth-Token`` with no signature.
* ``Grant``: that plus when it expires, as a source answers it; ``Issued``: a grant and when it
  came (Unix seconds on the injected clock), swapped in as one object so AK, SK and token
  always change together.
* ``parse_expiry``: every expiry form the services use; ``credential_fields``: the field names
  every source may use; ``header_safe``/``is_header_safe``: what a key or token may hold; ``renew_at``: when
  renewal is due.

Pure: no I/O, no clock reading. No ``repr`` or message here contains a secret value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.credentials.static import Credentials

RENEW_AHEAD_MAX_SECONDS = 40 * 60
"""Renewal starts when less than this (or half the lifetime, if shorter) remains: the SDK's
40 minutes, without its flaw of refetching on every request when credentials live less."""
RENEW_AFTER_MIN_SECONDS = 1.0
"""...but no sooner than this after they came: a source answering credentials that live a tenth
of a second (a broken endpoint, a clock far off) is asked once a second, not forty times."""

_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
"""What a key or token may hold: visible ASCII (AK and SK are, as issued, and the static keys
are held to the same)."""

_EXPIRY = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>Z|z|[+-]\d{2}:?\d{2})?"
)

# Where each item may be found, in every source: the SDK accepts all of these names.
_ACCESS_KEY_NAMES = ("access", "accessKeyId", "access_key_id")
_SECRET_KEY_NAMES = ("secret", "secretAccessKey", "secret_access_key")
_TOKEN_NAMES = ("securitytoken", "securityToken", "security_token")
_EXPIRY_NAMES = ("expires_at", "expiration")
_WRAPPERS = ("credential", "credentials")


class FetchFailed(Exception):
    """A source did not yield credentials; the message says why and never holds a secret."""


class CredentialsUnavailable(Exception):
    """No unexpired credentials are held right now (not yet obtained, or expired unrenewed)."""


@dataclass(frozen=True, slots=True, repr=False)
class IamToken:
    """An IAM token, sent as ``X-Auth-Token``; never shows its value."""

    value: str

    def __repr__(self) -> str:
        return f"IamToken(<{len(self.value)} chars>)"

    __str__ = __repr__


UpstreamAuth = Credentials | IamToken
"""How one upstream attempt authenticates: sign with these credentials, or send this token."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Credentials (or a token) as a source answered them, with their expiry (Unix seconds)."""

    auth: UpstreamAuth
    expires_at: float


@dataclass(frozen=True, slots=True)
class Issued:
    """A grant held by the gateway, with the clock time it came."""

    auth: UpstreamAuth
    expires_at: float
    obtained_at: float

    @property
    def renew_at(self) -> float:
        """When renewal is due: min(40 min, half the lifetime) before expiry, and not within
        ``RENEW_AFTER_MIN_SECONDS`` of obtaining them."""
        lifetime = max(self.expires_at - self.obtained_at, 0.0)
        return max(
            self.expires_at - min(RENEW_AHEAD_MAX_SECONDS, lifetime / 2), self.obtained_at + RENEW_AFTER_MIN_SECONDS
        )


def parse_expiry(text: str) -> float:
    """Unix seconds of an expiry string; raises ``FetchFailed`` when it is not one.

    Accepts what the services send (``2020-01-08T03:50:07.574000Z``, ``...07.084Z``) and what
    they might: no fraction, more than 6 fraction digits (truncated to microseconds), ``+00:00``
    or another offset, a space instead of ``T``. No zone at all is read as UTC.
    """
    match = _EXPIRY.fullmatch(text.strip())
    if match is None:
        raise FetchFailed(f"unreadable expiry time {text.strip()[:40]!r}")
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    zone = match["zone"] or "Z"
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{zone}")
        return moment.astimezone(UTC).timestamp()
    except (ValueError, OverflowError) as exc:  # no such date, or one past year 9999 in UTC
        raise FetchFailed(f"unreadable expiry time {text.strip()[:40]!r}") from exc


def is_header_safe(value: str) -> bool:
    """Whether a key or token holds only visible ASCII, as every header carrying it can."""
    return _HEADER_SAFE.fullmatch(value) is not None


def header_safe(value: str, label: str, *, what: str) -> str:
    """``value`` if it is visible ASCII; else ``FetchFailed`` naming the item (never the value):
    a key or token with a line break or a non-ASCII character could never be sent, and would
    fail every request until it expired."""
    if not is_header_safe(value):
        raise FetchFailed(f"{what} answered a {label} with characters other than visible ASCII")
    return value


def _first(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def credential_fields(body: Any, *, what: str) -> Grant:
    """Temporary credentials from a source's JSON body: under ``credential``/``credentials`` or at
    the top level, each item under any of its known names. ``what`` names the source in errors."""
    if not isinstance(body, dict):
        raise FetchFailed(f"{what} answered a body that is not a JSON object")
    record: Mapping[str, Any] = body
    for wrapper in _WRAPPERS:
        if isinstance(body.get(wrapper), dict):
            record = body[wrapper]
            break
    access_key = _first(record, _ACCESS_KEY_NAMES)
    secret_key = _first(record, _SECRET_KEY_NAMES)
    token = _first(record, _TOKEN_NAMES)
    expiry = _first(record, _EXPIRY_NAMES)
    missing = [
        label
        for label, value in (
            ("access key", access_key),
            ("secret key", secret_key),
            ("security token", token),
            ("expiry", expiry),
        )
        if value is None
    ]
    if access_key is None or secret_key is None or token is None or expiry is None:
        raise FetchFailed(f"{what} answered without {', '.join(missing)}")
    credentials = Credentials(
        header_safe(access_key, "access key", what=what),
        header_safe(secret_key, "secret key", what=what),
        header_safe(token, "security token", what=what),
    )
    return Grant(credentials, parse_expiry(expiry))
