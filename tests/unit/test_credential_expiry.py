"""gateway.credentials.issued: every expiry form the services use, the renewal rule, the field names."""

from __future__ import annotations

import pytest

from gateway.credentials.issued import FetchFailed, Issued, credential_fields, parse_expiry
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


def test_an_unreadable_expiry_is_a_fetch_failure() -> None:
    """Garbage is refused with a message, never accepted as some default."""
    with pytest.raises(FetchFailed, match="unreadable expiry"):
        parse_expiry("tomorrow")


@pytest.mark.parametrize(
    ("lifetime", "renew_before_expiry"),
    [(24 * 3600, 2400), (3600, 1800), (900, 450), (4, 2)],
)
def test_renewal_is_due_at_min_40_minutes_or_half_the_lifetime(lifetime: float, renew_before_expiry: float) -> None:
    """Long-lived credentials renew 40 min ahead; short-lived ones at half their life, never per request."""
    issued = Issued(Credentials("ak", "sk", "token"), expires_at=INSTANT + lifetime, obtained_at=INSTANT)
    assert issued.expires_at - issued.renew_at == renew_before_expiry


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
