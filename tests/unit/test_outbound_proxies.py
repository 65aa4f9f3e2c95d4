"""Which proxy an outbound call goes through, as the environment names them (``gateway.outbound``):
curl's and requests' variables (so the SDK's), never for loopback or link-local hosts, and the
proxy's password never said."""

from __future__ import annotations

import base64

import pytest

from gateway.outbound import Proxies, proxies_from_environment

PASSWORD = "pr0xy-s3cret"


def proxies(env: dict[str, str]) -> Proxies:
    found, problems = proxies_from_environment(env)
    assert problems == []
    return found


def proxy_url(proxies: Proxies, url: str) -> str | None:
    proxy = proxies.for_url(url)
    return None if proxy is None else proxy.url


def test_each_scheme_has_its_own_variable_and_all_proxy_stands_in_for_either() -> None:
    both = proxies({"HTTPS_PROXY": "http://secure.proxy:3128", "HTTP_PROXY": "http://plain.proxy:8080"})
    assert proxy_url(both, "https://metastudio.cn-north-4.myhuaweicloud.com") == "http://secure.proxy:3128"
    assert proxy_url(both, "http://idp.example.com/jwks") == "http://plain.proxy:8080"
    only_https = proxies({"HTTPS_PROXY": "http://secure.proxy:3128"})
    assert proxy_url(only_https, "http://idp.example.com/jwks") is None
    fallback = proxies({"ALL_PROXY": "http://any.proxy:3128", "HTTP_PROXY": "http://plain.proxy"})
    assert proxy_url(fallback, "https://iam.myhuaweicloud.com") == "http://any.proxy:3128"
    assert proxy_url(fallback, "http://idp.example.com") == "http://plain.proxy:80"


def test_the_lower_case_name_wins_and_an_empty_value_counts_as_unset() -> None:
    """As requests and curl read them: an empty ``https_proxy`` leaves ``HTTPS_PROXY`` and then
    ``ALL_PROXY`` to decide."""
    both = proxies({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"})
    assert proxy_url(both, "https://iam.myhuaweicloud.com") == "http://lower:1"
    emptied = proxies({"https_proxy": " ", "HTTPS_PROXY": "", "ALL_PROXY": "http://any.proxy:3128"})
    assert proxy_url(emptied, "https://iam.myhuaweicloud.com") == "http://any.proxy:3128"
    assert proxy_url(proxies({"https_proxy": ""}), "https://iam.myhuaweicloud.com") is None
    assert proxy_url(proxies({}), "https://iam.myhuaweicloud.com") is None
    assert (
        proxy_url(proxies({"HTTPS_PROXY": "proxy.internal:3128"}), "https://x.example") == "http://proxy.internal:3128"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/openstack/latest/securitykey",  # ECS metadata: the proxy's machine would answer
        "http://[fe80::1]:80/x",
        "http://127.0.0.1:8080/v1",
        "https://127.8.9.10/v1",
        "http://[::1]:9000/v1",
        "http://localhost:8080/v1",
        "http://LOCALHOST./v1",
        "http://api.localhost:8080/v1",
        "http://[::ffff:127.0.0.1]:8080/v1",  # IPv4 loopback, mapped into IPv6
        "http://[::ffff:169.254.169.254]/openstack",
        "http://0.0.0.0:8080/v1",
    ],
)
def test_loopback_and_link_local_hosts_are_never_proxied(url: str) -> None:
    everything = proxies({"ALL_PROXY": "http://any.proxy:3128"})
    assert everything.for_url(url) is None


def test_no_proxy_names_hosts_their_subdomains_and_ports_as_urllib_reads_it() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": " .internal.example, idp.example.com ,iam.example:8443"}
    some = proxies(env)
    assert some.for_url("https://jwks.internal.example/keys") is None
    assert some.for_url("https://idp.example.com/keys") is None
    assert some.for_url("https://login.idp.example.com/keys") is None  # a subdomain of a listed name
    assert some.for_url("https://iam.example:8443/v3") is None
    assert proxy_url(some, "https://iam.example/v3") == "http://proxy:3128"  # another port
    assert proxy_url(some, "https://notidp.example.com/keys") == "http://proxy:3128"
    assert proxy_url(some, "https://metastudio.cn-north-4.myhuaweicloud.com") == "http://proxy:3128"
    assert proxies({**env, "no_proxy": "*"}).for_url("https://metastudio.cn-north-4.myhuaweicloud.com") is None


def test_the_proxy_credentials_become_a_basic_authorization_and_are_never_shown() -> None:
    found = proxies({"HTTPS_PROXY": f"http://egress%40corp:{PASSWORD}%3A@proxy.internal:3128"})
    proxy = found.for_url("https://iam.myhuaweicloud.com")
    assert proxy is not None
    expected = "Basic " + base64.b64encode(f"egress@corp:{PASSWORD}:".encode()).decode()
    assert proxy.headers() == {"Proxy-Authorization": expected}
    aiohttp_proxy = found.request_options("https://iam.myhuaweicloud.com")["proxy"]
    assert (aiohttp_proxy.host, aiohttp_proxy.port) == ("proxy.internal", 3128)
    assert (aiohttp_proxy.user, aiohttp_proxy.password) == ("egress@corp", f"{PASSWORD}:")
    assert found.request_options("http://169.254.169.254/x") == {}
    for shown in (repr(found), repr(proxy), str(found), proxy.url, found.describe()):
        assert PASSWORD not in shown
        assert "egress" not in shown
        assert expected.split()[1] not in shown
    assert found.describe() == "outbound https via http://proxy.internal:3128"
    assert proxies({}).describe() == "no outbound proxy"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (f"socks5://user:{PASSWORD}@proxy:1080", "socks5:// proxies are not supported"),
        (f"https://user:{PASSWORD}@proxy:443", "https:// proxies are not supported"),
        (f"http://user:{PASSWORD}@proxy:99999", "port from 1 to 65535"),
        (f"http://user:{PASSWORD}@proxy:0", "port from 1 to 65535"),
        (f"http://user:{PASSWORD[:3]}\uff20{PASSWORD[3:]}@proxy:3128", "nothing after it"),  # urlsplit's text quotes it
        (f"egress:{PASSWORD}://proxy:3128", "nothing after it"),  # not "egress:// proxies are not supported"
        (f"http://user:{PASSWORD}%E2%82%AC@proxy:3128", "must be ASCII"),
        (f"http://us%3Aer:{PASSWORD}@proxy:3128", "the user without ':'"),
        (f"http://user:{PASSWORD}@proxy:3128/path", "nothing after it"),
        (f"http://user:{PASSWORD}@:3128", "nothing after it"),
    ],
)
def test_a_proxy_that_cannot_be_used_is_named_by_its_variable_without_its_value(value: str, said: str) -> None:
    found, problems = proxies_from_environment({"HTTPS_PROXY": value, "NO_PROXY": "x"})
    assert len(problems) == 1
    assert problems[0].startswith("HTTPS_PROXY: ")
    assert said in problems[0]
    assert PASSWORD not in problems[0]
    assert PASSWORD[3:] not in problems[0]
    assert "egress" not in problems[0]
    assert found.for_url("https://iam.myhuaweicloud.com") is None


def test_a_bad_all_proxy_is_said_once() -> None:
    _, problems = proxies_from_environment({"all_proxy": "socks5h://proxy:1080"})
    assert problems == ["all_proxy: must be an http:// proxy URL (socks5h:// proxies are not supported)"]


def test_no_proxy_reads_default_ports_addresses_and_ranges_as_requests_does() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128", "HTTP_PROXY": "http://proxy:3128"}
    matched = {
        "iam.example:443": "https://iam.example/v3",  # the URL's default port
        "iam.example.": "https://IAM.example./v3",  # trailing dots on either side
        "10.0.0.0/8": "https://10.20.30.40/v1",
        "10.1.2.3": "https://10.1.2.3:8443/v1",
        "fd00::/8": "https://[fd12::5]/v1",
        "[fd12::5]": "https://[fd12::5]/v1",
        "[fd12::5]:443": "https://[fd12::5]/v1",
        "10.1.2.3:80": "http://10.1.2.3/v1",
    }
    for entry, url in matched.items():
        assert proxies({**env, "NO_PROXY": entry}).for_url(url) is None, (entry, url)
    missed = [
        ("iam.example:8443", "https://iam.example/v3"),
        ("3.4", "https://1.2.3.4/v1"),  # not a suffix of an address
        ("10.0.0.0/8", "https://11.0.0.1/v1"),
        ("10.0.0.0/8", "https://ten.example/v1"),  # a range matches addresses, not names
        ("example", "https://notexample/v1"),
        ("example.com", "https://example.com.evil.net/v1"),
    ]
    for entry, url in missed:
        assert proxy_url(proxies({**env, "NO_PROXY": entry}), url) == "http://proxy:3128", (entry, url)
