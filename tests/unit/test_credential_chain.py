"""gateway.credentials.chain: the contract's order, a forced source, the profile file's section."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.credentials.chain import select_credentials
from gateway.credentials.static import CredentialsError
from tests.leaks import register_secrets

STATIC = {"HUAWEICLOUD_SDK_AK": "AK-CHAIN-1", "HUAWEICLOUD_SDK_SK": "SK-CHAIN-1"}
POD = {"HC_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/c", "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/t"}
OIDC = {
    "HUAWEICLOUD_OIDC_PROVIDER_URN": "p",
    "HUAWEICLOUD_OIDC_AGENCY_URN": "a",
    "HUAWEICLOUD_OIDC_TOKEN_FILE": "/t",
}
FEDERATION = {"HUAWEICLOUD_SDK_IDP_ID": "idp", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": "/t"}
register_secrets(["SK-CHAIN-1", "SK-PROFILE-1", "pw-chain-1"])


def source(env: dict[str, str]) -> str:
    return select_credentials({"HOME": "/nonexistent", **env}, clock=ManualClock()).source


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({**OIDC, **FEDERATION, **STATIC, **POD}, "oidc"),
        ({**FEDERATION, **STATIC, **POD}, "federation"),
        ({**STATIC, **POD}, "static"),
        (POD, "pod-identity"),
        ({}, "metadata"),
    ],
)
def test_the_first_configured_source_in_the_contracts_order_wins(env: dict[str, str], expected: str) -> None:
    """OIDC, federation, static, profile, pod identity, then metadata as the last resort."""
    assert source(env) == expected


def test_a_forced_source_wins_over_the_order() -> None:
    """METASTUDIO_CREDENTIALS_SOURCE picks one source even when an earlier one is configured."""
    assert source({**STATIC, **POD, "METASTUDIO_CREDENTIALS_SOURCE": "pod-identity"}) == "pod-identity"
    assert source({**STATIC, "METASTUDIO_CREDENTIALS_SOURCE": "metadata"}) == "metadata"


def test_token_mode_chooses_the_iam_token() -> None:
    """METASTUDIO_AUTH_MODE=token ignores the AK/SK chain."""
    login = {"METASTUDIO_IAM_DOMAIN": "d", "METASTUDIO_IAM_USER": "u", "METASTUDIO_IAM_PASSWORD": "pw-chain-1"}
    assert source({**STATIC, **login, "METASTUDIO_AUTH_MODE": "token"}) == "iam-token"


def test_the_profile_is_read_from_basic_in_home(tmp_path: Path) -> None:
    """``~/.huaweicloud/credentials`` section ``[basic]`` (not the SDK builder's ``[basiccredentials]``)."""
    (tmp_path / ".huaweicloud").mkdir()
    profile = tmp_path / ".huaweicloud" / "credentials"
    profile.write_text("[basiccredentials]\nak = AK-PROFILE-1\nsk = SK-PROFILE-1\n")
    env = {"HOME": str(tmp_path)}
    assert select_credentials(env, clock=ManualClock()).source == "metadata"  # skipped: no [basic]
    profile.write_text("[basic]\nak = AK-PROFILE-1\nsk = SK-PROFILE-1\n")
    holder = select_credentials(env, clock=ManualClock())
    assert holder.source == "profile"
    assert "SK-PROFILE-1" not in holder.describe()


def test_a_profile_with_half_a_key_pair_is_refused_in_the_files_words(tmp_path: Path) -> None:
    """A ``[basic]`` section with ``ak`` but no ``sk`` (or the reverse) names the file, the
    section and the missing key, not the environment variables of the static source."""
    profile = tmp_path / "credentials"
    for present, missing in (("ak = AK-PROFILE-1", "sk"), ("sk = SK-PROFILE-1", "ak")):
        profile.write_text(f"[basic]\n{present}\n")
        with pytest.raises(CredentialsError) as refused:
            select_credentials({"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(profile)}, clock=ManualClock())
        assert refused.value.problems == [f"{profile} [basic]: {missing} is not set (ak and sk go together)"]
        assert "SDK" not in str(refused.value) and "PROFILE-1" not in str(refused.value)


def test_a_bad_mode_or_source_name_is_refused() -> None:
    """Unknown METASTUDIO_AUTH_MODE or METASTUDIO_CREDENTIALS_SOURCE: a message naming the variable."""
    with pytest.raises(CredentialsError, match="METASTUDIO_AUTH_MODE"):
        source({"METASTUDIO_AUTH_MODE": "kerberos"})
    with pytest.raises(CredentialsError, match="METASTUDIO_CREDENTIALS_SOURCE"):
        source({"METASTUDIO_CREDENTIALS_SOURCE": "vault"})


@pytest.mark.parametrize("duration", ["0", "-60", "an hour", "3600s", "²"])
def test_a_bad_oidc_duration_is_refused_by_name(duration: str) -> None:
    """HUAWEICLOUD_OIDC_DURATION_SECONDS must be a positive whole number in ASCII digits ("²" is
    a digit to str.isdigit, not to int): anything else is a message naming the variable."""
    with pytest.raises(CredentialsError, match="HUAWEICLOUD_OIDC_DURATION_SECONDS"):
        source({**OIDC, "HUAWEICLOUD_OIDC_DURATION_SECONDS": duration})


def test_the_profile_file_named_must_give_credentials(tmp_path: Path) -> None:
    """``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` names a file without a usable ``[basic]`` section (the
    SDK builder's section name, other keys): refused, naming the variable; it used to be skipped,
    and the gateway started as the pod's or the node's identity instead."""
    profile = tmp_path / "credentials"
    env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(profile)}
    cases = {
        "[basiccredentials]\nak = AK-PROFILE-1\nsk = SK-PROFILE-1\n": "has no [basic] section (the SDK's client"
        " builder reads [basiccredentials]: name it [basic])",
        "[global]\nproject_id = p\n": "has no [basic] section",
        "[basic]\naccess_key = AK-PROFILE-1\n": "[basic] has neither ak + sk nor idp_id + id_token_file",
    }
    for text, reason in cases.items():
        profile.write_text(text)
        with pytest.raises(CredentialsError) as refused:
            select_credentials(env, clock=ManualClock())
        assert refused.value.problems == [f"HUAWEICLOUD_SDK_CREDENTIALS_FILE: {profile} {reason}"]


def test_a_profile_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A profile saved with a UTF-8 byte-order mark (it was refused: no section header)."""
    profile = tmp_path / "credentials"
    profile.write_text("\ufeff[basic]\nak = AK-PROFILE-1\nsk = SK-PROFILE-1\n", encoding="utf-8")
    holder = select_credentials({"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(profile)}, clock=ManualClock())
    assert holder.source == "profile"


def test_a_profile_that_cannot_be_read_is_skipped_in_home_and_refused_when_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile in HOME, unreadable (its permissions): skipped, as other tools' files may be;
    the same file named by HUAWEICLOUD_SDK_CREDENTIALS_FILE: refused, naming it. (As root, a
    file's permissions do not stop a read: the open is made to fail as it would.)"""
    (tmp_path / ".huaweicloud").mkdir()
    profile = tmp_path / ".huaweicloud" / "credentials"
    profile.write_text("[basic]\nak = AK-PROFILE-1\nsk = SK-PROFILE-1\n")

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    assert select_credentials({"HOME": str(tmp_path)}, clock=ManualClock()).source == "metadata"
    with pytest.raises(CredentialsError) as refused:
        select_credentials({"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(profile)}, clock=ManualClock())
    assert refused.value.problems == [f"HUAWEICLOUD_SDK_CREDENTIALS_FILE: {profile} cannot be read (Permission denied)"]
