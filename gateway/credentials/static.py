"""Where the access key, secret key and security token come from, and their refresh.

Each item is looked up in an environment mapping (passed in; this module never reads
``os.environ``) in this order, the first non-empty value winning:

* access key: ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_AK_FILE``, ``CLOUD_SDK_AK``, ``CLOUD_SDK_AK_FILE``
* secret key: ``HUAWEICLOUD_SDK_SK``, ``HUAWEICLOUD_SDK_SK_FILE``, ``CLOUD_SDK_SK``, ``CLOUD_SDK_SK_FILE``
* security token (optional): ``HUAWEICLOUD_SDK_SECURITY_TOKEN``, ``HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE``

A ``*_FILE`` variable names a file holding the value (a Kubernetes Secret mounted as a file),
surrounding white space stripped. Setting both ``X`` and ``X_FILE`` is a configuration error.

Which variable feeds each item is decided once, at start-up. After that only the contents of
the files are re-read: ``CredentialSource.current`` notices a changed file (by ``os.stat``) at
most every ``recheck_seconds`` on the injected clock, and ``CredentialSource.reload`` re-reads at
once (for when the upstream answers 401/403). A re-read that fails keeps the previous
credentials, so a file caught half-written never takes the gateway down.

No message, ``repr`` or log line produced here contains a credential value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.clock import Clock
from gateway.config.secret_files import UnusableValue, read_secret_file
from gateway.errors import ConfigError

logger = logging.getLogger(__name__)

FILE_SUFFIX = "_FILE"

_Fingerprint = tuple[int, int, int, int] | None


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """An access key pair and optional security token; never shows the values."""

    access_key: str
    secret_key: str
    security_token: str | None = None

    def __repr__(self) -> str:
        token = "None" if self.security_token is None else "'***'"
        return f"Credentials(access_key=<{len(self.access_key)} chars>, secret_key='***', security_token={token})"

    __str__ = __repr__


class CredentialsError(ConfigError):
    """Credentials are missing or unusable; ``problems`` names each variable at fault."""


@dataclass(frozen=True, slots=True)
class _Item:
    """One credential item and the variable names it may come from, official name first."""

    label: str
    names: tuple[str, ...]
    required: bool

    def candidates(self) -> list[str]:
        return [variable for name in self.names for variable in (name, name + FILE_SUFFIX)]


_ACCESS_KEY = _Item("access key", ("HUAWEICLOUD_SDK_AK", "CLOUD_SDK_AK"), required=True)
_SECRET_KEY = _Item("secret key", ("HUAWEICLOUD_SDK_SK", "CLOUD_SDK_SK"), required=True)
_SECURITY_TOKEN = _Item("security token", ("HUAWEICLOUD_SDK_SECURITY_TOKEN",), required=False)
_ITEMS = (_ACCESS_KEY, _SECRET_KEY, _SECURITY_TOKEN)
KEY_PAIR_VARIABLES = (*_ACCESS_KEY.candidates(), *_SECRET_KEY.candidates())
"""Every variable that may give the access key or the secret key: setting any one of them means
static keys are configured."""


@dataclass(frozen=True, slots=True)
class _Source:
    """The variable an item comes from: its value, or for a ``_FILE`` variable the file path."""

    variable: str
    value: str = field(default="", repr=False)
    path: str | None = None


def _is_set(env: Mapping[str, str], variable: str) -> bool:
    return bool(env.get(variable, "").strip())


def _check_value(variable: str, value: str) -> str:
    # Values end up in HTTP headers and the HMAC key: anything but visible ASCII is a mistake
    # (typically two values pasted on one line) and would break or leak into the request.
    if not all("!" <= char <= "~" for char in value):
        raise UnusableValue(f"{variable}: the value contains white space, control or non-ASCII characters")
    return value


def _fingerprint(path: str) -> _Fingerprint:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True, slots=True)
class _Resolved:
    source: _Source
    value: str = field(repr=False)
    fingerprint: _Fingerprint = None


def _resolve(item: _Item, env: Mapping[str, str], problems: list[str]) -> _Resolved | None:
    """Pick the variable that provides ``item``; appends to ``problems`` when none can."""
    conflicts = [
        f"{name} and {name + FILE_SUFFIX} are both set; set only one"
        for name in item.names
        if _is_set(env, name) and _is_set(env, name + FILE_SUFFIX)
    ]
    if conflicts:
        problems.extend(conflicts)
        return None

    empty_files: list[str] = []
    for variable in item.candidates():
        if not _is_set(env, variable):
            continue
        setting = env[variable].strip()
        try:
            if not variable.endswith(FILE_SUFFIX):
                return _Resolved(_Source(variable, value=setting), _check_value(variable, setting))
            # Stat before reading: a change landing after the stat is seen at the next check.
            fingerprint = _fingerprint(setting)
            value = read_secret_file(variable, setting)
            if value:
                return _Resolved(_Source(variable, path=setting), _check_value(variable, value), fingerprint)
            empty_files.append(f"{variable} names an empty file")
        except UnusableValue as exc:
            problems.append(str(exc))
            return None

    if item.required:
        first, *others = item.candidates()
        detail = "".join(f"; {note}" for note in empty_files)
        problems.append(f"{first} (or {', '.join(others)}) is not set{detail}")
    return None


def _credentials(values: Mapping[str, str]) -> Credentials:
    return Credentials(
        access_key=values[_ACCESS_KEY.label],
        secret_key=values[_SECRET_KEY.label],
        security_token=values.get(_SECURITY_TOKEN.label),
    )


class CredentialSource:
    """The current credentials, re-read from their files when those change."""

    def __init__(self, env: Mapping[str, str], *, clock: Clock, recheck_seconds: float = 2.0) -> None:
        """Load at once; raises ``CredentialsError`` naming every missing or bad variable."""
        self._clock = clock
        self._recheck_seconds = recheck_seconds
        problems: list[str] = []
        resolved: dict[str, _Resolved] = {}
        for item in _ITEMS:
            found = _resolve(item, env, problems)
            if found is not None:
                resolved[item.label] = found
        if problems:
            raise CredentialsError(problems)

        self._sources = {label: found.source for label, found in resolved.items()}
        self._fingerprints = {
            found.source.path: found.fingerprint for found in resolved.values() if found.source.path is not None
        }
        self._credentials = _credentials({label: found.value for label, found in resolved.items()})
        self._generation = 0
        self._checked_at = clock.now()

    @property
    def generation(self) -> int:
        """How many times the credentials have changed since start-up."""
        return self._generation

    def current(self) -> Credentials:
        """The credentials to sign with; cheap, re-reads files only when they changed."""
        if self._fingerprints:
            now = self._clock.now()
            if now - self._checked_at >= self._recheck_seconds or now < self._checked_at:
                self._checked_at = now
                seen = {path: _fingerprint(path) for path in self._fingerprints}
                if seen != self._fingerprints:
                    self._refresh(seen)
        return self._credentials

    def reload(self) -> Credentials:
        """Re-read every file now (the upstream refused our credentials)."""
        if self._fingerprints:
            self._checked_at = self._clock.now()
            self._refresh({path: _fingerprint(path) for path in self._fingerprints})
        return self._credentials

    def describe(self) -> str:
        """One line naming where each item comes from (names only, never values)."""
        parts = [
            f"{item.label} from {self._sources[item.label].variable}" for item in _ITEMS if item.label in self._sources
        ]
        if _SECURITY_TOKEN.label not in self._sources:
            parts.append("no security token")
        return "credentials: " + ", ".join(parts)

    def _refresh(self, seen: dict[str, _Fingerprint]) -> None:
        self._fingerprints = seen
        try:
            values = {label: self._read(source) for label, source in self._sources.items()}
        except UnusableValue as exc:
            logger.warning("credentials not reloaded, keeping the previous ones: %s", exc)
            return
        fresh = _credentials(values)
        if fresh != self._credentials:
            self._credentials = fresh
            self._generation += 1
            logger.info("credentials reloaded: %s", self.describe())

    @staticmethod
    def _read(source: _Source) -> str:
        if source.path is None:
            return source.value
        value = read_secret_file(source.variable, source.path)
        if not value:
            raise UnusableValue(f"{source.variable}: {source.path} is empty")
        return _check_value(source.variable, value)
