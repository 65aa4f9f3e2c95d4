"""Outbound HTTP's forward proxies: those the environment names, read as curl and requests (and so
the Huawei Cloud SDK) read them, for every call the gateway makes: the MetaStudio upstream, IAM,
the credential endpoints and the identity providers' key sets. Redis is not HTTP: not proxied.

- ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http URLs, ``ALL_PROXY`` for either when its
  own is not set; each name in lower case too, which wins (as curl and urllib read them). An
  empty value is no proxy.
- ``NO_PROXY``: the hosts called directly, matched by urllib's ``proxy_bypass_environment`` (a
  name and its subdomains, ``.domain``, ``host:port``, ``*`` for every host); no CIDR ranges.
- Never through a proxy: loopback and link-local hosts (``localhost``, 127.0.0.0/8, ::1,
  169.254.0.0/16, fe80::/10). The ECS metadata endpoint at 169.254.169.254 answers with the
  credentials of the machine that asks, and through a proxy that machine is the proxy's.
- A proxy is an ``http://`` URL, ``http://user:password@proxy.internal:3128``: https calls go
  through a CONNECT tunnel (TLS end to end with the host, verified as without a proxy), http
  calls in absolute form. The user and password (percent-decoded) go as ``Proxy-Authorization:
  Basic``, to the proxy only; they are never in a log, an error or a repr.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # urllib's, as aiohttp's NO_PROXY

import aiohttp
from yarl import URL

_SCHEMES = ("https", "http")
_NEVER_PROXIED_NAMES = ("localhost", "localhost.")


@dataclass(frozen=True, slots=True)
class ProxyServer:
    """A forward proxy: where to connect, and the user and password to give it (secrets)."""

    host: str
    port: int
    user: str | None = field(default=None, repr=False)
    password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """``http://host:port``: the proxy without its credentials, fit for a log line."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def headers(self) -> dict[str, str]:
        """The headers a request to the proxy carries: its credentials, if it has any."""
        if self.user is None:
            return {}
        basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return {"Proxy-Authorization": f"Basic {basic}"}

    def for_aiohttp(self) -> URL:
        """The proxy as aiohttp's ``proxy=`` takes it: with its credentials, which aiohttp sends
        in CONNECT for an https URL, and with each request for an http one (its ``proxy_headers``
        reach the proxy only in CONNECT)."""
        if self.user is None:
            return URL.build(scheme="http", host=self.host, port=self.port)
        return URL.build(scheme="http", user=self.user, password=self.password, host=self.host, port=self.port)


@dataclass(frozen=True, slots=True)
class Proxies:
    """The proxy of each URL scheme, and the hosts called directly (see the module docstring)."""

    by_scheme: Mapping[str, ProxyServer] = field(default_factory=dict)
    no_proxy: str = ""

    def for_url(self, url: str) -> ProxyServer | None:
        """The proxy a call to ``url`` goes through, ``None`` if it is made directly."""
        if not self.by_scheme:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        proxy = self.by_scheme.get(parts.scheme)
        if proxy is None or _never_proxied(host):
            return None
        if self.no_proxy and proxy_bypass_environment(parts.netloc.rpartition("@")[2], {"no": self.no_proxy}):
            return None
        return proxy

    def request_options(self, url: str) -> dict[str, Any]:
        """The ``proxy`` keyword of an aiohttp request to ``url`` (none when it goes directly)."""
        proxy = self.for_url(url)
        return {} if proxy is None else {"proxy": proxy.for_aiohttp()}

    def describe(self) -> str:
        """The proxies in words, without their credentials (``check-config``, the start-up log)."""
        if not self.by_scheme:
            return "no outbound proxy"
        named = ", ".join(f"{scheme} via {proxy.url}" for scheme, proxy in sorted(self.by_scheme.items(), reverse=True))
        return f"outbound {named}" + (f", not for NO_PROXY={self.no_proxy}" if self.no_proxy else "")


def proxies_from_environment(env: Mapping[str, str]) -> tuple[Proxies, list[str]]:
    """The proxies ``env`` names, and the problems met (each naming its variable, never its value,
    which may hold a password). A variable with a problem is left out."""
    by_scheme: dict[str, ProxyServer] = {}
    problems: list[str] = []
    for scheme in _SCHEMES:
        variable, value = _variable(env, f"{scheme}_proxy") or _variable(env, "all_proxy") or ("", "")
        if not value:
            continue
        try:
            by_scheme[scheme] = _proxy_server(value)
        except ValueError as exc:
            problems.append(f"{variable}: {exc}")
    no_proxy = (_variable(env, "no_proxy") or ("", ""))[1]
    return Proxies(by_scheme, no_proxy.strip()), sorted(set(problems))


class Outbound:
    """An aiohttp session whose requests go through the proxy their URL needs (``Proxies``)."""

    def __init__(self, session: aiohttp.ClientSession, proxies: Proxies) -> None:
        self.session = session
        self.proxies = proxies

    def request(self, method: str, url: str, **options: Any) -> Any:
        """``session.request`` with the proxy keywords of ``url`` added (an async context manager)."""
        return self.session.request(method, url, **options, **self.proxies.request_options(url))


def _variable(env: Mapping[str, str], lower: str) -> tuple[str, str] | None:
    """The variable set for ``lower`` (``https_proxy``), the lower-case name first; ``None`` if
    neither spelling is set."""
    for name in (lower, lower.upper()):
        value = env.get(name)
        if value is not None:
            return name, value.strip()
    return None


def _proxy_server(value: str) -> ProxyServer:
    parts = urlsplit(value if "://" in value else f"http://{value}")  # a bare host:port is http, as curl reads it
    if parts.scheme != "http":
        raise ValueError(f"must be an http:// proxy URL ({parts.scheme[:10]}:// proxies are not supported)")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError("must be an http:// proxy URL with a port from 1 to 65535") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be an http:// proxy URL: http://[user:password@]host[:port], nothing after it")
    if parts.username is None:
        return ProxyServer(parts.hostname, port)
    return ProxyServer(parts.hostname, port, unquote(parts.username), unquote(parts.password or ""))


def _never_proxied(host: str) -> bool:
    if host.lower() in _NEVER_PROXIED_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local
