"""The keys that sign cover-image links: ``GATEWAY_URL_SIGNING_KEYS`` (or ``_FILE``), environment only.

The value is ``kid:secret`` pairs separated by commas, e.g. ``k2:<secret>,k1:<secret>``. The first
key signs new links; every listed key verifies, so a rotation is: add the new key second, roll out;
move it first, roll out; after the link TTL (plus one quantisation step) drop the old one. A key id is
1 to 32 of ``A-Z a-z 0-9 _ -`` (it travels in the link); a secret is at least 32 bytes.

Like the cloud credentials, the keys are read from an environment mapping that is passed in (the
config file cannot hold them) and never shown: messages name the variable and the entry's position,
never any part of the value, and ``UrlSigningKey``'s ``repr`` hides the secret.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.secret_files import UnusableValue, read_secret_file
from gateway.errors import ConfigError

VARIABLE = "GATEWAY_URL_SIGNING_KEYS"
FILE_VARIABLE = f"{VARIABLE}_FILE"
MIN_SECRET_BYTES = 32
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True, slots=True, repr=False)
class UrlSigningKey:
    """One signing key: its id (public, in every link) and its secret (never shown)."""

    kid: str
    secret: bytes

    def __repr__(self) -> str:
        return f"UrlSigningKey(kid={self.kid!r}, secret='***')"

    __str__ = __repr__


def parse_url_signing_keys(text: str, variable: str = VARIABLE) -> tuple[UrlSigningKey, ...]:
    """The keys in ``text`` (``kid:secret,kid:secret``), first the signing one; ``ConfigError``
    naming ``variable`` and each bad entry by position, never quoting the value."""
    problems: list[str] = []
    keys: list[UrlSigningKey] = []
    seen: set[str] = set()
    entries = text.split(",")
    for position, entry in enumerate(entries, start=1):
        kid, colon, secret = entry.strip().partition(":")
        where = f"{variable}: entry {position} of {len(entries)}"
        if not colon or not _KID.fullmatch(kid):
            problems.append(f"{where} is not kid:secret (kid: 1 to 32 of A-Z a-z 0-9 _ -)")
        elif len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            problems.append(f"{where}: the secret is shorter than {MIN_SECRET_BYTES} bytes")
        elif kid in seen:
            problems.append(f"{where}: key id '{kid}' appears twice")
        else:
            seen.add(kid)
            keys.append(UrlSigningKey(kid, secret.encode("utf-8")))
    if problems:
        raise ConfigError(problems)
    return tuple(keys)


def url_signing_keys(env: Mapping[str, str]) -> tuple[UrlSigningKey, ...]:
    """The keys ``env`` configures (empty when neither variable is set); ``ConfigError`` naming the
    variable when they are unusable."""
    given, path = env.get(VARIABLE, "").strip(), env.get(FILE_VARIABLE, "").strip()
    if given and path:
        raise ConfigError([f"{VARIABLE} and {FILE_VARIABLE} are both set; set one"])
    if path:
        try:
            text = read_secret_file(FILE_VARIABLE, path)
        except UnusableValue as exc:
            raise ConfigError([str(exc)]) from None
        if not text:
            raise ConfigError([f"{FILE_VARIABLE}: {path} is empty"])
        return parse_url_signing_keys(text, FILE_VARIABLE)
    return parse_url_signing_keys(given) if given else ()


def random_url_signing_keys() -> tuple[UrlSigningKey, ...]:
    """One fresh random key (``serve`` without configured keys, and the demo)."""
    return (UrlSigningKey("random", secrets.token_urlsafe(32).encode("ascii")),)
