"""SDK-HMAC-SHA256 verification of incoming jobs requests, as the Huawei Cloud API gateway does it.

Pure: the caller hands in what came off the wire (method, raw path, decoded query pairs,
headers) and the current time. The canonical request is rebuilt from those bytes with
``gateway.upstream.signing``, so anything the client changed after signing (one byte of the query, of
a signed header or of the signature) fails. The result is ``None`` for an authentic request,
else a short reason for the request log; callers only ever see one 401 body.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from gateway.upstream.signing import (
    DATE_FORMAT,
    authorization_header,
    canonical_request,
    parse_authorization,
    signature,
    string_to_sign,
)

MAX_CLOCK_SKEW_SECONDS = 15 * 60
REQUIRED_SIGNED_HEADERS = ("host", "x-project-id", "x-sdk-date")
_SDK_DATE = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True, slots=True)
class Credentials:
    """The key pair (and optional security token) the simulator accepts."""

    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


def parse_raw_query(raw_query: str) -> list[tuple[str, str]]:
    """Decode a raw query string into ``(name, value)`` pairs in wire order.

    Splits on ``&`` and on the first ``=``, then percent-decodes with ``unquote`` (a ``+``
    stays a ``+``, as the SDK encodes it). Empty segments are kept, so they change the
    canonical query and cannot be slipped into a signed request.
    """
    if not raw_query:
        return []
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def _same(left: str, right: str) -> bool:
    """Constant-time equality of two texts (any characters)."""
    return hmac.compare_digest(left.encode("utf-8", "surrogateescape"), right.encode("utf-8", "surrogateescape"))


def _sdk_date_seconds(value: str) -> float | None:
    """Unix seconds of an ``X-Sdk-Date`` value, ``None`` unless it is exactly ``YYYYMMDDTHHMMSSZ``."""
    if not _SDK_DATE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _collect(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Every value received per lower-cased header name."""
    received: dict[str, list[str]] = {}
    for name, value in headers:
        received.setdefault(name.lower(), []).append(value)
    return received


def check_signature(
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    credentials: Credentials,
    path_project_id: str,
    now: float,
) -> str | None:
    """Return ``None`` when the request is authentic, else why it is not.

    ``headers`` are every ``(name, value)`` as received, repeats included. Refused: a missing
    or malformed ``Authorization``, an unknown access key, ``host``/``x-sdk-date``/
    ``x-project-id`` (and ``x-security-token`` when the credentials have one, ``x-app-userid``
    when sent) not signed, a security token sent with permanent credentials (an old one kept
    after a change of credentials), a signed header missing or repeated, ``X-Sdk-Date``
    unparsable or more than 15 minutes from ``now``, ``X-Project-Id`` not the path's project, a
    wrong security token, or a signature that does not match the canonical request rebuilt from
    the wire.
    """
    received = _collect(headers)
    authorization = received.get("authorization")
    if not authorization or len(authorization) > 1:
        return "missing or repeated Authorization"
    parsed = parse_authorization(authorization[0])
    # parse_authorization lets a repeated field win over an earlier one; only the SDK's exact
    # form is accepted, so no bytes of the header can go unchecked.
    if parsed is None or authorization[0] != authorization_header(
        parsed.access_key, parsed.signed_headers, parsed.signature
    ):
        return "malformed Authorization"
    if not _same(parsed.access_key, credentials.access_key):
        return "unknown access key"

    signed = parsed.signed_headers
    if list(signed) != sorted(set(signed)) or any(not n or "_" in n or n != n.lower() for n in signed):
        return "malformed SignedHeaders"
    required: tuple[str, ...] = REQUIRED_SIGNED_HEADERS
    if credentials.security_token is not None:
        required += ("x-security-token",)
    if "x-app-userid" in received:  # the header that picks the tenant's jobs: signed, as the SDK signs it
        required += ("x-app-userid",)
    unsigned = [name for name in required if name not in signed]
    if unsigned:
        return f"not signed: {', '.join(unsigned)}"
    if credentials.security_token is None and "x-security-token" in received:
        return "X-Security-Token with permanent credentials"

    values: dict[str, str] = {}
    for name in signed:
        found = received.get(name)
        if not found:
            return f"signed header missing: {name}"
        if len(found) > 1:
            return f"signed header repeated: {name}"
        values[name] = found[0].strip()

    sdk_date = values["x-sdk-date"]
    sent_at = _sdk_date_seconds(sdk_date)
    if sent_at is None:
        return "X-Sdk-Date unparsable"
    if abs(sent_at - now) > MAX_CLOCK_SKEW_SECONDS:
        return "X-Sdk-Date too far from now"
    if values["x-project-id"] != path_project_id:
        return "X-Project-Id does not match the path"
    if credentials.security_token is not None and not _same(values["x-security-token"], credentials.security_token):
        return "wrong X-Security-Token"

    canonical, _ = canonical_request(method, raw_path, query, values)
    expected = signature(credentials.secret_key, string_to_sign(canonical, sdk_date))
    if not _same(expected, parsed.signature):
        return "signature mismatch"
    return None
