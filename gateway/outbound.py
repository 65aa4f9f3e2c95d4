"""Outbound HTTP's forward proxies: those the environment names, read as requests (and so the
Huawei Cloud SDK) and curl read them, for every call the gateway makes: the MetaStudio upstream,
IAM, the credential endpoints and the identity providers' key sets. Redis is not HTTP: not proxied.

- ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http URLs, ``ALL_PROXY`` for either when its
  own is unset or empty; each name in lower case too, which wins.
- ``NO_PROXY``, comma-separated: ``*`` for every host; a name, for it and its subdomains (a
  leading or trailing dot ignored); an IP address or a CIDR range, for the addresses in it; any of
  these with ``:port``, for that port only (a URL's default port counts). Matched here rather than
  by urllib's ``proxy_bypass_environment``, which knows no CIDR range, misses ``host:443`` for a
  URL that leaves the port out, and matches ``3.4`` as a suffix of ``1.2.3.4``.
- Never through a proxy: loopback, link-local and unspecified addresses (an IPv4 one mapped into
  IPv6 too), ``localhost`` and names under it. The ECS metadata endpoint at 169.254.169.254
  answers with the credentials of the machine that asks, and through a proxy that machine is the
  proxy's.
- A proxy is an ``http://`` URL, ``http://user:password@proxy.internal:3128`` (a bare
  ``host:port`` is read as one; without a port, 80): https calls go through a CONNECT tunnel (TLS
  end to end with the host, verified as without a proxy), http calls in absolute form. The user
  and password (percent-decoded, ASCII: aiohttp and the tunnel would encode others differently)
  go as ``Proxy-Authorization: Basic``, to the proxy only; they are never in a log, an error or a
  repr.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from yarl import URL

_SCHEMES = ("https", "http")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSUPPORTED_SCHEMES = ("https", "socks4", "socks4a", "socks5", "socks5h")


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
        proxy = self.by_scheme.get(parts.scheme)
        host = (parts.hostname or "").rstrip(".")
        if proxy is None or _never_proxied(host):
            return None
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        if any(_bypasses(entry, host, port) for entry in self.no_proxy.split(",")):
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
        if not value:  # neither set (an empty value counts as unset, as curl and requests read it)
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
    neither spelling is set to more than blanks."""
    for name in (lower, lower.upper()):
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _proxy_server(value: str) -> ProxyServer:
    """The proxy a variable's value names; ``ValueError`` in words that quote none of it (it may
    hold a password)."""
    form = "must be an http:// proxy URL: http://[user:password@]host[:port from 1 to 65535], nothing after it"
    scheme = value.partition("://")[0].lower() if "://" in value else "http"  # a bare host:port is http
    if scheme in _UNSUPPORTED_SCHEMES:
        raise ValueError(f"must be an http:// proxy URL ({scheme}:// proxies are not supported)")
    if scheme != "http":  # not named: it may be the start of the user's name
        raise ValueError(form)
    try:
        parts = urlsplit(value if "://" in value else f"http://{value}")
        host, port = parts.hostname, parts.port
        user, password = parts.username, parts.password
    except ValueError:  # its text quotes the value
        raise ValueError(form) from None
    if not host or port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(form)
    if user is None:
        return ProxyServer(host, port or 80)
    user, password = unquote(user), unquote(password or "")
    if not (user + password).isascii() or ":" in user:
        raise ValueError("the proxy's user and password must be ASCII, and the user without ':'")
    return ProxyServer(host, port or 80, user, password)


def _bypasses(entry: str, host: str, port: int | None) -> bool:
    """Whether a ``NO_PROXY`` entry sends a call to ``host`` (its port ``port``) directly."""
    entry = entry.strip().lower()
    if entry == "*":
        return True
    name, wanted = entry, None
    if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):  # host:port or [v6]:port
        name, _, digits = entry.rpartition(":")
        if not digits.isdigit():
            return False
        wanted = int(digits)
    name = name.strip("[]").strip(".")
    if not name or (wanted is not None and wanted != port):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: the name, or a subdomain of it
        return host.lower() == name or host.lower().endswith("." + name)
    try:
        return address in ipaddress.ip_network(name, strict=False)
    except ValueError:  # a name: it matches no address
        return False


def _never_proxied(host: str) -> bool:
    name = host.lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified
