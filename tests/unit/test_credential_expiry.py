"""gateway.credentials.issued: every expiry form the services use, the renewal rule, the field names
and what a key or token may hold."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from gateway.credentials.issued import RENEW_AFTER_MIN_SECONDS, FetchFailed, Issued, credential_fields, parse_expiry
from gateway.credentials.providers import PodIdentity
from gateway.credentials.static import Credentials

INSTANT = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T00:00:00.000000Z",  # IAM: 6 digits
        "2026-01-01T00:00:00.000Z",  # STS v5: 3 digits
        "2026-01-01T00:00:00Z",  # no fraction
        "2026-01-01T00:00:00.000000+00:00",  # offset instead of Z
        "2026-01-01T08:00:00+08:00",  # another offset
        "2026-01-01T00:00:00.0000000Z",  # 7 digits (the SDK fails on these)
    ],
)
def test_every_expiry_form_is_the_same_utc_instant(text: str) -> None:
    """Fractions of 0 to 9 digits, Z or an offset: one aware UTC instant."""
    assert parse_expiry(text) == INSTANT


@pytest.mark.parametrize("text", ["tomorrow", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59-01:00"])
def test_an_unreadable_expiry_is_a_fetch_failure(text: str) -> None:
    """Garbage, a date that does not exist or one past year 9999 in UTC is refused with a
    message, never accepted as some default (the last raised OverflowError: at start-up in auto
    mode, a traceback)."""
    with pytest.raises(FetchFailed, match="unreadable expiry"):
        parse_expiry(text)


@pytest.mark.parametrize(
    ("lifetime", "renew_before_expiry"),
    [(24 * 3600, 2400), (3600, 1800), (900, 450), (4, 2)],
)
def test_renewal_is_due_at_min_40_minutes_or_half_the_lifetime(lifetime: float, renew_before_expiry: float) -> None:
    """Long-lived credentials renew 40 min ahead; short-lived ones at half their life, never per request."""
    issued = Issued(Credentials("ak", "sk", "token"), expires_at=INSTANT + lifetime, obtained_at=INSTANT)
    assert issued.expires_at - issued.renew_at == renew_before_expiry


@pytest.mark.parametrize("lifetime", [0.1, 1.5])
def test_credentials_that_live_a_moment_are_renewed_at_most_once_a_second(lifetime: float) -> None:
    """A source answering credentials that live a tenth of a second (a broken endpoint, a clock
    far off) is asked again a second after, not at once: half of 0.1 s made 118 fetches in 3 s."""
    issued = Issued(Credentials("ak", "sk", "token"), expires_at=INSTANT + lifetime, obtained_at=INSTANT)
    assert issued.renew_at == INSTANT + RENEW_AFTER_MIN_SECONDS


@pytest.mark.parametrize(
    "body",
    [
        {"credential": {"access": "A", "secret": "S", "securitytoken": "T", "expires_at": "2026-01-01T00:00:00Z"}},
        {
            "credentials": {
                "accessKeyId": "A",
                "secretAccessKey": "S",
                "securityToken": "T",
                "expiration": "2026-01-01T00:00:00Z",
            }
        },
        {"access_key_id": "A", "secret_access_key": "S", "security_token": "T", "expiration": "2026-01-01T00:00:00Z"},
    ],
)
def test_credentials_are_found_under_every_name_the_services_use(body: dict[str, object]) -> None:
    """Wrapped in credential/credentials or at the top level, each item under any of its names."""
    grant = credential_fields(body, what="test")
    assert grant.auth == Credentials("A", "S", "T")
    assert grant.expires_at == INSTANT


def test_a_missing_item_is_named_without_showing_the_others() -> None:
    """No security token: the failure says which item is missing and holds no value."""
    with pytest.raises(FetchFailed) as caught:
        credential_fields({"credential": {"access": "AK1", "secret": "SK1", "expires_at": "x"}}, what="pod identity")
    assert "security token" in str(caught.value)
    assert "SK1" not in str(caught.value)


@pytest.mark.parametrize(
    ("item", "value"),
    [("securitytoken", "T\r\nX-Evil: 1"), ("access", "AK 1"), ("secret", "SK\u00e9"), ("securitytoken", "T\x00")],
)
def test_a_key_or_token_no_header_could_carry_is_a_fetch_failure(item: str, value: str) -> None:
    """A line break, a space, a control or a non-ASCII character in what a source answers: the
    fetch fails, saying which item, and the held credentials stay (such a grant used to be held
    to its expiry, each request a 500 as its header could not be built)."""
    body = {
        "credential": {"access": "AK1", "secret": "SK1", "securitytoken": "T1", "expires_at": "2026-01-01T00:00:00Z"}
    }
    body["credential"][item] = value
    with pytest.raises(FetchFailed, match="characters other than visible ASCII") as caught:
        credential_fields(body, what="pod identity")
    assert value not in str(caught.value)


async def test_a_pod_token_file_of_two_lines_is_a_fetch_failure_naming_the_file(tmp_path: Path) -> None:
    """The projected token goes in a header as it is: a file holding two lines fails the fetch,
    naming the variable and the file, before anything is sent (it was aiohttp's ValueError,
    logged as unexpected)."""
    token_file = tmp_path / "token"
    token_file.write_text("first-line\nsecond-line\n")
    provider = PodIdentity(uri="http://127.0.0.1:9/never-called", token_file=str(token_file))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(FetchFailed) as caught:
            await provider.fetch(session)
    variable = "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"
    assert str(caught.value) == f"{variable}: {token_file} holds more than one line, or a character a header cannot"
