"""Cover-URL lifetimes: when a ``cover_download_url`` stops working and whether it may be served.

The upstream hands out pre-signed object-storage URLs valid for 24 hours. Where the URL says
when it expires we believe it (OBS/S3 V2 ``Expires``; V4 ``X-Amz-Date`` + ``X-Amz-Expires``,
or OBS's ``X-Obs-`` spelling), otherwise we assume fetch time + 24 h.
"""

from __future__ import annotations

import re
from calendar import timegm
from collections.abc import Iterable
from time import strptime
from urllib.parse import unquote_plus

from gateway.numbers import ascii_digits

COVER_LIFETIME_SECONDS = 24 * 3600
MAX_STATED_LIFETIME_SECONDS = 7 * 24 * 3600
"""The longest a URL is believed when it says when it expires: the most a SigV4 pre-signed URL
may live. A later stated expiry (a value past year 9999 among them, which no date can hold) is
not believed, and the 24 h default applies."""
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")
"""What a URL handed out may not hold: it goes into a ``Location`` header and an ``<img src>``."""
_V4_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_V4_PREFIXES = ("x-amz", "x-obs")
_EXPIRY_PARAMETERS = frozenset(
    {"expires", *(f"{prefix}-{name}" for prefix in _V4_PREFIXES for name in ("date", "expires"))}
)


_URL_NOISE = "\t\r\n"
"""What ``urllib.parse.urlsplit`` removes from a URL before splitting it."""
_WITHOUT_NOISE = str.maketrans("", "", _URL_NOISE)


def url_query(url: str) -> str:
    """The query of ``url`` as ``urllib.parse.urlsplit(url).query`` finds it (after the first
    ``?`` before any ``#``; tabs and line breaks removed), without the checks of the other parts
    that cost urlsplit 6 µs on a URL it has not seen (every cover URL is new), nor its
    ``ValueError`` on a malformed host."""
    query = url.partition("#")[0].partition("?")[2]
    if any(noise in query for noise in _URL_NOISE):
        query = query.translate(_WITHOUT_NOISE)
    return query


def expiry_parameters(query: str) -> dict[str, str]:
    """The parameters of a URL query that say when it expires, by lower-case name, decoded as
    ``urllib.parse.parse_qsl`` decodes them (the last of a repeated name wins, empty values are
    left out). Only these names are decoded: ``parse_qsl`` decodes every parameter of a signed
    link (its signature and token too), most of the time it took to shape a job."""
    found = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if not value:
            continue
        name = unquote_plus(name).lower() if "%" in name or "+" in name else name.lower()
        if name in _EXPIRY_PARAMETERS:
            found[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return found


def _parse_v4(params: dict[str, str], prefix: str) -> float | None:
    date = params.get(f"{prefix}-date")
    lifetime = params.get(f"{prefix}-expires")
    if date is None or lifetime is None:
        return None
    try:
        return float(timegm(strptime(date, _V4_DATE_FORMAT)) + int(lifetime))
    except (ValueError, OverflowError):  # OverflowError: a lifetime past a float's range
        return None


def _stated_expiry(url: str) -> float | None:
    """When ``url`` says it expires, if it says so."""
    params = expiry_parameters(url_query(url))
    expires = params.get("expires")
    if expires is not None and ascii_digits(expires):
        return float(expires)
    for prefix in _V4_PREFIXES:
        parsed = _parse_v4(params, prefix)
        if parsed is not None:
            return parsed
    return None


def is_believable(expires_at: float, at: float) -> bool:
    """Whether an expiry said at ``at`` is believed: at most ``MAX_STATED_LIFETIME_SECONDS`` ahead."""
    return expires_at <= at + MAX_STATED_LIFETIME_SECONDS


def cover_expiry(url: str, fetched_at: float) -> float:
    """Unix time at which ``url`` stops working: what it says, unless it says nothing or is not
    believable, then ``fetched_at`` + 24 h."""
    stated = _stated_expiry(url)
    if stated is None or not is_believable(stated, fetched_at):
        return fetched_at + COVER_LIFETIME_SECONDS
    return stated


def is_usable_url(url: str) -> bool:
    """Whether a cover URL can be handed out at all: http(s), with no space or control character."""
    return url.partition("://")[0].lower() in ("http", "https") and not _UNSENDABLE.search(url)


def is_servable(expires_at: float, now: float, margin_seconds: float) -> bool:
    """A cover URL may be handed out only while more than the margin remains."""
    return expires_at - margin_seconds > now


def earliest(expiries: Iterable[float]) -> float | None:
    """The first of several expiry times, ``None`` when there are none."""
    return min(expiries, default=None)
