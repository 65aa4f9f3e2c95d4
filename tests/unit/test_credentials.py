"""gateway.credentials.static: where AK/SK/token come from, how rotation is noticed, what never leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.credentials.static import Credentials, CredentialsError, CredentialSource
from gateway.errors import ConfigError

AK = "AK-SECRET-123"
SK = "SK-SECRET-456"
TOKEN = "TOKEN-SECRET-789"
NEW_AK = "AK-ROTATED-321"
NEW_SK = "SK-ROTATED-654"


def write(path: Path, value: str) -> str:
    """Replace a secret file the way Kubernetes does: a new file renamed over the old one."""
    staging = path.with_name(path.name + ".new")
    staging.write_text(value)
    os.replace(staging, path)
    return str(path)


def load(env: dict[str, str], clock: ManualClock | None = None, **kwargs: float) -> CredentialSource:
    return CredentialSource(env, clock=clock or ManualClock(), **kwargs)


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(CredentialsError) as caught:
        load(env)
    return caught.value.problems


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """An environment whose AK, SK and token come from secret files."""
    return {
        "HUAWEICLOUD_SDK_AK_FILE": write(tmp_path / "ak", AK + "\n"),
        "HUAWEICLOUD_SDK_SK_FILE": write(tmp_path / "sk", f"  {SK}\r\n"),
        "HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE": write(tmp_path / "token", TOKEN),
    }


# --- where the values come from ---------------------------------------------------------------


def test_official_names() -> None:
    """HUAWEICLOUD_SDK_AK/SK/SECURITY_TOKEN provide the credentials."""
    source = load({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_SECURITY_TOKEN": TOKEN})
    assert source.current() == Credentials(AK, SK, TOKEN)


def test_fallback_names() -> None:
    """CLOUD_SDK_AK/SK are accepted when the official names are absent."""
    source = load({"CLOUD_SDK_AK": AK, "CLOUD_SDK_SK": SK})
    assert source.current() == Credentials(AK, SK, None)


def test_official_name_wins_over_fallback() -> None:
    """When both are set, the official name's value is used."""
    source = load({"HUAWEICLOUD_SDK_AK": AK, "CLOUD_SDK_AK": NEW_AK, "HUAWEICLOUD_SDK_SK": SK, "CLOUD_SDK_SK": NEW_SK})
    assert source.current() == Credentials(AK, SK)


def test_official_file_wins_over_fallback_value(tmp_path: Path) -> None:
    """HUAWEICLOUD_SDK_AK_FILE comes before CLOUD_SDK_AK."""
    source = load(
        {
            "HUAWEICLOUD_SDK_AK_FILE": write(tmp_path / "ak", AK),
            "CLOUD_SDK_AK": NEW_AK,
            "HUAWEICLOUD_SDK_SK": SK,
        }
    )
    assert source.current().access_key == AK


def test_file_variants_are_read_and_stripped(files: dict[str, str]) -> None:
    """*_FILE variables name files whose contents, stripped of surrounding white space, are used."""
    assert load(files).current() == Credentials(AK, SK, TOKEN)


def test_a_byte_order_mark_an_editor_wrote_is_not_part_of_the_value(tmp_path: Path) -> None:
    """A file saved by an editor that writes a UTF-8 byte-order mark first: the value is what
    follows it (it was refused as a value with a non-printable character; a token file's was sent)."""
    source = load(
        {
            "HUAWEICLOUD_SDK_AK_FILE": write(tmp_path / "ak", "\ufeff" + AK + "\r\n"),
            "HUAWEICLOUD_SDK_SK_FILE": write(tmp_path / "sk", "\ufeff" + SK),
        }
    )
    assert source.current() == Credentials(AK, SK)


def test_fallback_file_variants(tmp_path: Path) -> None:
    """CLOUD_SDK_AK_FILE and CLOUD_SDK_SK_FILE are accepted too."""
    source = load({"CLOUD_SDK_AK_FILE": write(tmp_path / "ak", AK), "CLOUD_SDK_SK_FILE": write(tmp_path / "sk", SK)})
    assert source.current() == Credentials(AK, SK)


def test_value_and_file_for_the_same_name_is_an_error(tmp_path: Path) -> None:
    """Setting both X and X_FILE is refused, naming both variables."""
    problems = problems_of(
        {
            "HUAWEICLOUD_SDK_AK": AK,
            "HUAWEICLOUD_SDK_AK_FILE": write(tmp_path / "ak", AK),
            "HUAWEICLOUD_SDK_SK": SK,
        }
    )
    assert problems == ["HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_AK_FILE are both set; set only one"]


def test_missing_values_are_named() -> None:
    """With nothing set, the error names every variable that could provide AK and SK."""
    problems = problems_of({})
    assert problems == [
        "HUAWEICLOUD_SDK_AK (or HUAWEICLOUD_SDK_AK_FILE, CLOUD_SDK_AK, CLOUD_SDK_AK_FILE) is not set",
        "HUAWEICLOUD_SDK_SK (or HUAWEICLOUD_SDK_SK_FILE, CLOUD_SDK_SK, CLOUD_SDK_SK_FILE) is not set",
    ]


def test_credentials_error_is_a_config_error() -> None:
    """A credentials problem is reported like any other configuration problem."""
    with pytest.raises(ConfigError, match="HUAWEICLOUD_SDK_SK"):
        load({"HUAWEICLOUD_SDK_AK": AK})


def test_empty_values_count_as_missing() -> None:
    """An empty (or blank) variable is treated as not set, so a fallback may provide the value."""
    source = load({"HUAWEICLOUD_SDK_AK": "", "CLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": "  ", "CLOUD_SDK_SK": SK})
    assert source.current() == Credentials(AK, SK)
    assert problems_of({"HUAWEICLOUD_SDK_AK": "", "HUAWEICLOUD_SDK_SK": SK}) == [
        "HUAWEICLOUD_SDK_AK (or HUAWEICLOUD_SDK_AK_FILE, CLOUD_SDK_AK, CLOUD_SDK_AK_FILE) is not set"
    ]


def test_empty_value_beside_file_is_not_a_conflict(tmp_path: Path) -> None:
    """An empty X next to a set X_FILE is not 'both set'."""
    source = load(
        {
            "HUAWEICLOUD_SDK_AK": "",
            "HUAWEICLOUD_SDK_AK_FILE": write(tmp_path / "ak", AK),
            "HUAWEICLOUD_SDK_SK": SK,
        }
    )
    assert source.current().access_key == AK


def test_empty_file_counts_as_missing(tmp_path: Path) -> None:
    """An empty secret file is not a value; the error says which file was empty."""
    problems = problems_of({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK_FILE": write(tmp_path / "sk", "\n")})
    assert problems == [
        "HUAWEICLOUD_SDK_SK (or HUAWEICLOUD_SDK_SK_FILE, CLOUD_SDK_SK, CLOUD_SDK_SK_FILE) is not set; "
        "HUAWEICLOUD_SDK_SK_FILE names an empty file"
    ]


def test_unreadable_file_is_named_with_its_path(tmp_path: Path) -> None:
    """A _FILE that cannot be read is an error naming the variable, the path and the reason."""
    missing = tmp_path / "nowhere"
    problems = problems_of({"HUAWEICLOUD_SDK_AK_FILE": str(missing), "HUAWEICLOUD_SDK_SK": SK})
    assert problems == [f"HUAWEICLOUD_SDK_AK_FILE: cannot read {missing}: No such file or directory"]


def test_value_with_inner_white_space_is_refused() -> None:
    """A value with white space inside (two values pasted on one line) is refused."""
    problems = problems_of({"HUAWEICLOUD_SDK_AK": f"{AK} {SK}", "HUAWEICLOUD_SDK_SK": SK})
    assert problems == ["HUAWEICLOUD_SDK_AK: the value contains white space, control or non-ASCII characters"]


def test_security_token_is_optional() -> None:
    """Without a token the credentials carry none."""
    assert load({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}).current().security_token is None


def test_describe_names_the_sources(files: dict[str, str]) -> None:
    """describe() says which variable each item came from."""
    assert load(files).describe() == (
        "credentials: access key from HUAWEICLOUD_SDK_AK_FILE, secret key from HUAWEICLOUD_SDK_SK_FILE, "
        "security token from HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE"
    )
    assert load({"CLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}).describe() == (
        "credentials: access key from CLOUD_SDK_AK, secret key from HUAWEICLOUD_SDK_SK, no security token"
    )


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_is_noticed_only_after_recheck_seconds(files: dict[str, str]) -> None:
    """A rewritten file is picked up by current() once recheck_seconds have passed on the clock."""
    clock = ManualClock()
    source = load(files, clock, recheck_seconds=2.0)
    write(Path(files["HUAWEICLOUD_SDK_AK_FILE"]), NEW_AK)

    clock.advance(1.999)
    assert source.current().access_key == AK
    clock.advance(0.001)
    assert source.current() == Credentials(NEW_AK, SK, TOKEN)
    assert source.generation == 1


def test_reload_picks_up_a_change_at_once(files: dict[str, str]) -> None:
    """reload() re-reads the files without waiting for the clock."""
    source = load(files)
    write(Path(files["HUAWEICLOUD_SDK_SK_FILE"]), NEW_SK)
    assert source.reload() == Credentials(AK, NEW_SK, TOKEN)
    assert source.current().secret_key == NEW_SK


def test_generation_counts_actual_changes_only(files: dict[str, str]) -> None:
    """Rewriting a file with the same value does not count as a change."""
    clock = ManualClock()
    source = load(files, clock)
    write(Path(files["HUAWEICLOUD_SDK_AK_FILE"]), AK)
    clock.advance(5)
    source.current()
    source.reload()
    assert source.generation == 0
    write(Path(files["HUAWEICLOUD_SDK_AK_FILE"]), NEW_AK)
    source.reload()
    assert source.generation == 1


def test_deleted_file_keeps_the_previous_credentials(files: dict[str, str]) -> None:
    """When a secret file disappears, the last good credentials stay in use."""
    clock = ManualClock()
    source = load(files, clock)
    os.remove(files["HUAWEICLOUD_SDK_AK_FILE"])
    clock.advance(10)
    assert source.current() == Credentials(AK, SK, TOKEN)
    assert source.reload() == Credentials(AK, SK, TOKEN)


def test_emptied_file_keeps_the_previous_credentials(files: dict[str, str]) -> None:
    """When a secret file becomes empty, the last good credentials stay in use."""
    clock = ManualClock()
    source = load(files, clock)
    write(Path(files["HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE"]), "\n")
    clock.advance(10)
    assert source.current() == Credentials(AK, SK, TOKEN)
    assert source.reload() == Credentials(AK, SK, TOKEN)
    assert source.generation == 0


def test_file_coming_back_is_picked_up(files: dict[str, str]) -> None:
    """After a failed re-read, the next good version of the file is used."""
    clock = ManualClock()
    source = load(files, clock)
    os.remove(files["HUAWEICLOUD_SDK_AK_FILE"])
    clock.advance(10)
    source.current()
    write(Path(files["HUAWEICLOUD_SDK_AK_FILE"]), NEW_AK)
    clock.advance(10)
    assert source.current().access_key == NEW_AK


def test_plain_variables_never_change(tmp_path: Path) -> None:
    """Credentials from plain variables stay as loaded however much time passes."""
    clock = ManualClock()
    source = load({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}, clock)
    clock.advance(3600)
    assert source.current() == source.reload() == Credentials(AK, SK)
    assert source.generation == 0


# --- nothing leaks ----------------------------------------------------------------------------


def assert_no_secret(text: str) -> None:
    for secret in (AK, SK, TOKEN, NEW_AK, NEW_SK, "SECRET", "ROTATED"):
        assert secret not in text


def test_repr_and_str_hide_every_value() -> None:
    """Neither repr() nor str() of Credentials shows the access key, secret key or token."""
    credentials = Credentials(AK, SK, TOKEN)
    assert_no_secret(repr(credentials))
    assert_no_secret(str(credentials))
    assert_no_secret(f"{credentials!r} {credentials}")
    assert repr(credentials) == (f"Credentials(access_key=<{len(AK)} chars>, secret_key='***', security_token='***')")


def test_describe_never_shows_values(files: dict[str, str]) -> None:
    """describe() names variables only."""
    assert_no_secret(load(files).describe())
    assert_no_secret(load({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}).describe())


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_AK_FILE": "/x", "CLOUD_SDK_SK": SK}, id="both-set"),
        pytest.param({"HUAWEICLOUD_SDK_AK": f"{AK} {SK}", "HUAWEICLOUD_SDK_SK": SK}, id="bad-value"),
        pytest.param({"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SECURITY_TOKEN": TOKEN}, id="missing-sk"),
        pytest.param({"HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_AK_FILE": "/nonexistent"}, id="unreadable"),
    ],
)
def test_error_messages_never_show_values(env: dict[str, str]) -> None:
    """Configuration errors name variables and paths, never a credential value."""
    with pytest.raises(CredentialsError) as caught:
        load(env)
    assert_no_secret(str(caught.value))
    assert_no_secret(" ".join(caught.value.problems))


def test_failed_reload_logs_no_values(files: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """The warning about a failed re-read names the file, never a value."""
    source = load(files)
    write(Path(files["HUAWEICLOUD_SDK_AK_FILE"]), f"{NEW_AK} {NEW_SK}")
    with caplog.at_level("DEBUG", logger="gateway.credentials.static"):
        source.reload()
    assert "HUAWEICLOUD_SDK_AK_FILE" in caplog.text
    assert_no_secret(caplog.text)
