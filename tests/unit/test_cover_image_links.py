"""Signed cover-image links as pure functions: the MAC on the wire, checking a page's links, and
the job path they are built on."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.url_signing import UrlSigningKey
from gateway.errors import Forbidden
from gateway.jobs.image_links import CoverImageLinks
from gateway.jobs.shaping import job_path
from gateway.tenant import Tenant

KEY = UrlSigningKey(kid="k1", secret=b"s" * 32)
ACME = Tenant(id="acme", app_user_id="acme-web", api_key_sha256=())
NOW = 1_700_000_000.0


def _link(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, dict(parse_qsl(parts.query))


def test_a_link_carries_hmac_sha256_over_context_tenant_job_expiry_and_key_id() -> None:
    """The wire format links already handed out depend on (a replica of another version must
    check them): HMAC-SHA256 under the key's secret over the five fields joined by newlines,
    base64url without padding; recomputed here in one shot."""
    links = CoverImageLinks([KEY], [ACME], ttl_seconds=600, base_url="https://gw.example")
    path, query = _link(links.urls("acme", NOW)("job-1"))
    assert path == "/v1/training-jobs/job-1/cover-image"
    message = b"\n".join((b"metastudio-gateway cover-image v1", b"acme", b"job-1", query["exp"].encode(), b"k1"))
    expected = base64.urlsafe_b64encode(hmac.new(KEY.secret, message, hashlib.sha256).digest()).rstrip(b"=")
    assert query == {"tenant": "acme", "exp": str(links.expiry(NOW)), "kid": "k1", "sig": expected.decode()}


def test_every_link_of_a_page_checks_out_and_an_altered_one_does_not() -> None:
    """One maker signs a page's jobs; each link names its own job (another job's link is refused)."""
    links = CoverImageLinks([KEY], [ACME], ttl_seconds=600)
    url = links.urls("acme", NOW)
    for job_id in ("job-1", "job-2", "job 3/é"):
        _path, query = _link(url(job_id))
        assert links.check(job_id, query, NOW)[0] == ACME
        with pytest.raises(Forbidden):
            links.check(job_id + "x", query, NOW)


def test_a_page_of_links_is_served_until_one_step_before_they_expire_as_a_float_time() -> None:
    """A body holding links made at NOW is served while they have a step (a tenth of the TTL)
    left. The time is a float, as every time an entry holds: a hit compares it with the clock,
    and CPython compares a float with a Unix time held as an int the slow way."""
    links = CoverImageLinks([KEY], [ACME], ttl_seconds=600)
    until = links.serve_until(NOW)
    assert until == links.expiry(NOW) - 60
    assert type(until) is float


@pytest.mark.parametrize(
    ("job_id", "path"),
    [
        ("329ecf7979d331ccc03218974c4d3ed6", "/v1/training-jobs/329ecf7979d331ccc03218974c4d3ed6"),
        ("a-b_c.d~e", "/v1/training-jobs/a-b_c.d~e"),
        ("a/b c", "/v1/training-jobs/a%2Fb%20c"),
        ("é", "/v1/training-jobs/%C3%A9"),
        ("..", "/v1/training-jobs/.."),
    ],
)
def test_a_job_path_encodes_the_id_as_one_segment(job_id: str, path: str) -> None:
    assert job_path(job_id) == path


@given(st.text(max_size=20))
def test_a_job_path_is_the_quoted_id_whatever_it_holds(job_id: str) -> None:
    assert job_path(job_id) == "/v1/training-jobs/" + quote(job_id, safe="")
