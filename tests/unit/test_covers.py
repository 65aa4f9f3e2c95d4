"""Cover-URL expiry: read from the URL where it says so, else fetch time + 24 h."""

from __future__ import annotations

from calendar import timegm
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.jobs.covers import (
    COVER_LIFETIME_SECONDS,
    cover_expiry,
    earliest,
    expiry_parameters,
    is_servable,
    is_usable_url,
    url_query,
)

FETCHED = 1_700_000_000.0


def test_obs_v2_expires_is_used() -> None:
    """OBS/S3 V2 pre-signed URLs say when they expire in Expires (Unix seconds)."""
    url = "https://bucket.obs.cn-north-4.myhuaweicloud.com/a.png?AccessKeyId=X&Expires=1700003600&Signature=abc%3D"
    assert cover_expiry(url, FETCHED) == 1_700_003_600


def test_v4_date_plus_lifetime_is_used() -> None:
    """V4 URLs expire at X-Amz-Date + X-Amz-Expires."""
    url = "https://s3.example.com/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20231114T221320Z&X-Amz-Expires=600"
    assert cover_expiry(url, FETCHED) == timegm((2023, 11, 14, 22, 13, 20, 0, 0, 0)) + 600


def test_obs_spelling_of_v4_is_used() -> None:
    """OBS's X-Obs-Date/X-Obs-Expires spelling is read too, whatever the case of the names."""
    url = "https://obs.example.com/a.png?x-obs-date=20231114T221320Z&x-obs-expires=60"
    assert cover_expiry(url, FETCHED) == timegm((2023, 11, 14, 22, 13, 20, 0, 0, 0)) + 60


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/646682fa_cover?param1=XXX&param2=YYY",
        "https://example.com/a.png?Expires=soon",
        "https://example.com/a.png?Expires=%C2%B2",  # a digit to str.isdigit, not to float
        "https://example.com/a.png?X-Amz-Date=20231114T221320Z&X-Amz-Expires=%C2%B2",
        "https://example.com/a.png?X-Amz-Date=garbage&X-Amz-Expires=60",
        "https://example.com/a.png?X-Amz-Date=20231114T221320Z",
        "not a url at all",
        # Past what a pre-signed URL may live: past year 9999 (no date holds it: a 500 once), a
        # float's range (OverflowError, a 500 once), or just eight days ahead.
        "https://example.com/a.png?Expires=300000000000",
        "https://example.com/a.png?Expires=" + "9" * 400,
        "https://example.com/a.png?X-Amz-Date=20231114T221320Z&X-Amz-Expires=" + "9" * 400,
        f"https://example.com/a.png?Expires={int(FETCHED) + 8 * 86400}",
    ],
)
def test_unreadable_expiry_falls_back_to_fetch_time_plus_24h(url: str) -> None:
    """A URL that does not say (or says nonsense, or more than 7 days ahead) is assumed valid
    24 h from fetch."""
    assert cover_expiry(url, FETCHED) == FETCHED + COVER_LIFETIME_SECONDS


def test_servable_only_while_more_than_the_margin_remains() -> None:
    """A link is servable strictly before expiry minus margin."""
    assert is_servable(1000.0, now=899.0, margin_seconds=100)
    assert not is_servable(1000.0, now=900.0, margin_seconds=100)
    assert not is_servable(1000.0, now=1001.0, margin_seconds=0)


def test_earliest_of_none_is_none() -> None:
    """No links: no earliest expiry."""
    assert earliest([]) is None
    assert earliest([5.0, 3.0, 4.0]) == 3.0


NAMES = ["Expires", "expires", "X-Amz-Date", "x-obs-expires", "X%2DAmz%2DExpires", "X-Obs-Dat%65", "Ex+pires"]
NAMES += ["Signature", "", "%", "%2", "x-amz-date;"]
VALUES = ["1700003600", "20231114T221320Z", "", "%3D", "a+b", "%2", "\u00e9", ";", "x=y", "&"]
PAIRS = st.tuples(st.sampled_from(NAMES), st.sampled_from(["=", "", "=="]), st.sampled_from(VALUES))
QUERIES = st.lists(PAIRS, max_size=6)


@given(QUERIES.map(lambda pairs: "&".join("".join(pair) for pair in pairs)))
def test_expiry_parameters_are_read_as_parse_qsl_reads_them(query: str) -> None:
    """Only the expiry parameters are decoded, and exactly as the standard library decodes them."""
    wanted = ("expires", "x-amz-date", "x-amz-expires", "x-obs-date", "x-obs-expires")
    standard = {name.lower(): value for name, value in parse_qsl(query)}
    assert expiry_parameters(query) == {name: standard[name] for name in wanted if name in standard}


URL_PIECES = [
    "https://",
    "bucket.obs.example.com",
    "[::1]",
    "[bad",
    ":443",
    "/a.png",
    "/",
    "?",
    "#",
    "&",
    "=",
    "Expires=1700003600",
    "%3F",
    "\t",
    "\r",
    "\n",
    " ",
    "\u00e9",
    "x",
    "//",
]


@given(st.lists(st.sampled_from(URL_PIECES), max_size=12).map("".join))
def test_a_url_query_is_found_as_urlsplit_finds_it(url: str) -> None:
    """Where ``urlsplit`` reads a URL, ``url_query`` finds the same query (and where urlsplit
    raises, on a malformed host, it finds one too rather than failing the page)."""
    try:
        expected = urlsplit(url).query
    except ValueError:
        assert isinstance(url_query(url), str)
        return
    assert url_query(url) == expected


@pytest.mark.parametrize(
    ("url", "usable"),
    [
        ("https://obs.example.com/a.png?Expires=1700003600&Signature=abc%3D", True),
        ("HTTP://obs.example.com/a.png", True),
        ("https://obs.example.com/a.png?Expires=1700003600\r\nSet-Cookie: x=1", False),
        ("https://obs.example.com/a.png?Expires=1700003600\x00", False),
        ("https://obs.example.com/a b.png", False),
        ("javascript:alert(1)", False),
        ("/relative/a.png", False),
    ],
)
def test_only_an_http_url_without_spaces_or_control_characters_is_handed_out(url: str, usable: bool) -> None:
    """A cover URL goes into a ``Location`` header and an ``<img src>``: one holding a line break
    could not be sent (the connection closed with nothing), and one not http(s) is no image."""
    assert is_usable_url(url) is usable
