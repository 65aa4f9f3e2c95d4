"""SDK-HMAC-SHA256 request signing, byte-identical to the official Huawei Cloud SDK.

Pure: every input (including the timestamp) comes in as an argument and signed headers
come out; nothing here does I/O or reads the clock. The algorithm follows
``huaweicloudsdkcore.signer.Signer`` step by step, quirks included:

* query parameters are sorted as ``(key, value)`` tuples on their *raw* text, then each
  key and value is percent-encoded with only ``~`` (and the unreserved set) left bare;
  list values are sorted and repeated, booleans become ``true``/``false``;
* a ``Content-Type`` that is not JSON adds ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD``;
* every header whose name has no ``_`` is signed, names lower-cased and sorted, values
  stripped of surrounding white space (the stripped value is also what goes on the wire);
* the canonical URI re-encodes each path segment and always ends with ``/``;
* the query string that goes on the wire *is* the canonical query string, so the request
  must be sent without re-encoding (``gateway.upstream.connections`` sends it as given; an
  aiohttp client needs ``yarl.URL(..., encoded=True)``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

QueryValue = str | bool | int | float | list[str]
QueryParams = Sequence[tuple[str, QueryValue]]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What to put on the wire: the exact path+query and the full header set."""

    path_and_query: str
    headers: dict[str, str]
    canonical_request: str


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_query_string(params: QueryParams) -> str:
    """Sort and encode query parameters exactly as the SDK does."""
    pairs: list[str] = []
    for key, value in sorted(params):
        encoded_key = _encode(key)
        if isinstance(value, list):
            pairs.extend(f"{encoded_key}={_encode(str(item))}" for item in sorted(value))
        elif isinstance(value, bool):
            pairs.append(f"{encoded_key}={_encode(str(value).lower())}")
        else:
            pairs.append(f"{encoded_key}={_encode(str(value))}")
    return "&".join(pairs)


def path_and_query(path: str, query: QueryParams) -> str:
    """``path`` with the canonical query string after it (none when it is empty): what goes on the wire."""
    return _joined(path, canonical_query_string(query))


def _joined(path: str, query_string: str) -> str:
    return f"{path}?{query_string}" if query_string else path


@functools.lru_cache(maxsize=64)
def canonical_uri(path: str) -> str:
    """Re-encode each path segment and make sure the URI ends with a slash."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Return the stripped header values by lower-cased name, and the signed names."""
    values = {name.lower(): str(value).strip() for name, value in headers.items()}
    signed = sorted(name.lower() for name in headers if "_" not in name)
    return values, signed


def canonical_request(
    method: str,
    path: str,
    query: QueryParams,
    headers: Mapping[str, str],
    body_sha256: str = EMPTY_BODY_SHA256,
) -> tuple[str, list[str]]:
    """Build the canonical request; returns it with the list of signed header names."""
    return _canonical_request(method, path, canonical_query_string(query), headers, body_sha256)


def _canonical_request(
    method: str, path: str, query_string: str, headers: Mapping[str, str], body_sha256: str = EMPTY_BODY_SHA256
) -> tuple[str, list[str]]:
    values, signed = canonical_headers(headers)
    header_block = "".join(f"{name}:{values[name]}\n" for name in signed)
    text = "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            query_string,
            header_block,
            ";".join(signed),
            body_sha256,
        )
    )
    return text, signed


def string_to_sign(canonical: str, timestamp: str) -> str:
    """The text the HMAC covers: algorithm, timestamp, hash of the canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{digest}"


def signature(secret_key: str, text: str) -> str:
    """Hex HMAC-SHA256 of ``text`` under the secret key."""
    return hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(access_key: str, signed_headers: Sequence[str], sig: str) -> str:
    """The ``Authorization`` value: ``SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...``."""
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


@functools.lru_cache(maxsize=2)
def format_timestamp(moment: datetime) -> str:
    """``X-Sdk-Date`` form of a UTC time: ``YYYYMMDD'T'HHMMSS'Z'`` (remembered: a caller passing
    whole seconds formats each second once)."""
    return moment.strftime(DATE_FORMAT)


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: QueryParams,
    headers: Mapping[str, str],
    access_key: str,
    secret_key: str,
    timestamp: datetime,
) -> SignedRequest:
    """Sign a body-less request; ``headers`` must not contain Host, X-Sdk-Date or Authorization.

    ``path`` is the already percent-encoded resource path, sent as given.
    """
    stamp = format_timestamp(timestamp)
    to_sign = dict(headers)
    # The SDK marks any non-JSON Content-Type (looked up by this exact name) as unsigned payload.
    content_type = headers.get("Content-Type")
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        to_sign["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
    to_sign.update({"X-Sdk-Date": stamp, "Host": host})
    query_string = canonical_query_string(query)  # signed, and sent as it is
    canonical, signed = _canonical_request(method, path, query_string, to_sign)
    sig = signature(secret_key, string_to_sign(canonical, stamp))
    wire_headers = {name: str(value).strip() for name, value in to_sign.items()}
    wire_headers["Authorization"] = authorization_header(access_key, signed, sig)
    return SignedRequest(path_and_query=_joined(path, query_string), headers=wire_headers, canonical_request=canonical)


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed ``Authorization`` header."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    """Parse an SDK-HMAC-SHA256 ``Authorization`` header; ``None`` when malformed."""
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        return None
    fields: dict[str, str] = {}
    for part in value[len(prefix) :].split(", "):
        name, sep, content = part.partition("=")
        if not sep or name in fields:
            return None
        fields[name] = content
    try:
        return Authorization(
            access_key=fields["Access"],
            signed_headers=tuple(fields["SignedHeaders"].split(";")),
            signature=fields["Signature"],
        )
    except KeyError:
        return None
