"""gateway.upstream.signing on its own: fixed vectors (computed once with the official SDK) and properties
that hold without the SDK installed."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.upstream import signing

TIMESTAMP = datetime(2024, 5, 6, 7, 8, 9)
HOST = "metastudio.cn-north-4.myhuaweicloud.com"
JOBS_PATH = "/v1/0a1b2c3d4e5f60718293a4b5c6d7e8f9/digital-human-training-manage/user/jobs"


def test_known_vector_with_token_and_chinese_query() -> None:
    """A request with a security token and a Chinese query value signs to the SDK's vector."""
    signed = signing.sign(
        method="GET",
        host=HOST,
        path=JOBS_PATH,
        query=[("tag", "a b"), ("name", "数字人")],
        headers={"X-App-UserId": "acme", "X-Security-Token": "tok"},
        access_key="AK",
        secret_key="SK",
        timestamp=TIMESTAMP,
    )
    assert signed.canonical_request == (
        f"GET\n{JOBS_PATH}/\nname=%E6%95%B0%E5%AD%97%E4%BA%BA&tag=a%20b\n"
        f"host:{HOST}\nx-app-userid:acme\nx-sdk-date:20240506T070809Z\nx-security-token:tok\n\n"
        "host;x-app-userid;x-sdk-date;x-security-token\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert signed.headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-app-userid;x-sdk-date;x-security-token, "
        "Signature=9439fa609b6b1da19fdeaaa53b4dab9a492c00af198a1fa6fecad53eefd2d79f"
    )
    assert signed.path_and_query == f"{JOBS_PATH}?name=%E6%95%B0%E5%AD%97%E4%BA%BA&tag=a%20b"


def test_known_vector_realistic_list_request() -> None:
    """The realistic MetaStudio list request signs to the SDK's vector."""
    signed = signing.sign(
        method="GET",
        host=HOST,
        path=JOBS_PATH,
        query=[
            ("offset", 0),
            ("limit", 10),
            ("sort_key", "create_time"),
            ("state", "SUCCEED,JOB_FINISH"),
            ("is_flexus", False),
        ],
        headers={
            "Content-Type": "application/json",
            "User-Agent": "metastudio-gateway/0.1.0",
            "X-Project-Id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "X-App-UserId": "acme-web",
        },
        access_key="AK-EXAMPLE-0000000001",
        secret_key="SK-example-secret-0000000000000000000001",
        timestamp=TIMESTAMP,
    )
    assert signed.headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AK-EXAMPLE-0000000001, "
        "SignedHeaders=content-type;host;user-agent;x-app-userid;x-project-id;x-sdk-date, "
        "Signature=c4f6e203d5e91558b19a2a37aa17cb00862cfc3b0dbe97d70323cdc863357c6a"
    )


def test_wire_query_is_the_signed_query_for_repeated_list_keys() -> None:
    """Two list values under one key go on the wire in the order they were signed.

    (The SDK itself sends ``k=a&k=b&k=a&k=c`` here after signing ``k=a&k=c&k=a&k=b``,
    because it sorts the lists in place between its two passes.)
    """
    signed = signing.sign(
        method="GET",
        host=HOST,
        path="/p",
        query=[("k", ["b", "a"]), ("k", ["a", "c"])],
        headers={},
        access_key="AK",
        secret_key="SK",
        timestamp=TIMESTAMP,
    )
    canonical_query = signed.canonical_request.split("\n")[2]
    assert canonical_query == "k=a&k=c&k=a&k=b"
    assert signed.path_and_query == f"/p?{canonical_query}"


def test_signing_leaves_the_callers_inputs_alone() -> None:
    """Signing sorts nothing in place and adds nothing to the caller's header dict."""
    query: list[tuple[str, signing.QueryValue]] = [("tag", ["z", "a"]), ("b", "1")]
    headers = {"X-App-UserId": " acme "}
    signing.sign(
        method="GET",
        host=HOST,
        path="/p",
        query=query,
        headers=headers,
        access_key="AK",
        secret_key="SK",
        timestamp=TIMESTAMP,
    )
    assert query == [("tag", ["z", "a"]), ("b", "1")]
    assert headers == {"X-App-UserId": " acme "}


def test_wire_header_values_are_the_stripped_signed_values() -> None:
    """Headers go on the wire stripped, exactly as they were signed."""
    signed = signing.sign(
        method="GET",
        host=HOST,
        path="/p",
        query=[],
        headers={"X-App-UserId": "  acme-web \t"},
        access_key="AK",
        secret_key="SK",
        timestamp=TIMESTAMP,
    )
    assert signed.headers["X-App-UserId"] == "acme-web"
    assert "x-app-userid:acme-web\n" in signed.canonical_request


@settings(max_examples=200, deadline=None)
@given(
    access_key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
    header_names=st.lists(st.text(st.sampled_from("abcXYZ-"), min_size=1, max_size=8), max_size=4),
)
def test_authorization_parses_back(access_key: str, header_names: list[str]) -> None:
    """parse_authorization reads back the access key, signed headers and signature we wrote."""
    headers = {name: "v" for name in header_names if name.lower() not in {"host", "x-sdk-date"}}
    signed = signing.sign(
        method="GET",
        host=HOST,
        path="/p",
        query=[],
        headers=headers,
        access_key=access_key.replace(",", ""),
        secret_key="SK",
        timestamp=TIMESTAMP,
    )
    parsed = signing.parse_authorization(signed.headers["Authorization"])
    assert parsed is not None
    assert parsed.access_key == access_key.replace(",", "")
    assert parsed.signed_headers == tuple(signed.canonical_request.split("\n")[-2].split(";"))
    assert signed.headers["Authorization"].endswith(f"Signature={parsed.signature}")
