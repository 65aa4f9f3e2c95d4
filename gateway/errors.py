"""The gateway's error tree. Each error knows its HTTP status and stable code.

::

    GatewayError                       500 internal_error
    ├── InvalidParameter               400 invalid_parameter
    ├── InvalidRequest                 400 invalid_parameter (the request itself: size, body)
    ├── Unauthenticated                401 unauthenticated
    │   └── InvalidToken               401 unauthenticated (a bearer JWT refused, with the reason)
    ├── Forbidden                      403 forbidden
    ├── NotFound                       404 not_found
    ├── MethodNotAllowed               405 method_not_allowed
    ├── LinkExpired                    410 link_expired
    ├── RateLimited                    429 rate_limited
    ├── AuthUnavailable                503 auth_unavailable (a JWT issuer's keys are unavailable)
    └── UpstreamError                  (the upstream failed us)
        ├── UpstreamRejected           502 upstream_error
        ├── UpstreamUnavailable        503 upstream_unavailable
        └── UpstreamTimeout            504 upstream_timeout
    ConfigError                        (start-up only: never reaches a client)

Messages are written for callers: they never carry upstream error text, signed headers or
credentials. Lower-level exceptions are translated once, at the boundary that sees them,
with ``raise ... from exc``.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error a client can be shown."""

    status = 500
    code = "internal_error"
    default_message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class InvalidParameter(GatewayError):
    status = 400
    code = "invalid_parameter"

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"invalid parameter '{parameter}': {reason}")
        self.parameter = parameter


class InvalidRequest(GatewayError):
    """The request as a whole is refused (too long a target, too many headers, a body where none
    belongs); the message says what is wrong. Same status and code as ``InvalidParameter``."""

    status = 400
    code = "invalid_parameter"


class Unauthenticated(GatewayError):
    status = 401
    code = "unauthenticated"
    default_message = "missing or unknown API key"


class InvalidToken(Unauthenticated):
    """A bearer token that is a JWT and is refused; ``reason`` says why in fixed words (it never
    quotes the token or a claim) and goes into ``WWW-Authenticate`` as ``error_description``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid bearer token: {reason}")
        self.reason = reason


class Forbidden(GatewayError):
    """The request is understood but refused: a cover-image link that is not genuine (tampered,
    another tenant's, an unknown key id), or a valid end-user token that maps to no tenant."""

    status = 403
    code = "forbidden"
    default_message = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    default_message = "not found"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"
    default_message = "method not allowed"


class LinkExpired(GatewayError):
    """A genuine cover-image link whose time is up: the page should fetch the job list again."""

    status = 410
    code = "link_expired"
    default_message = "this link has expired"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"
    default_message = "too many requests"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many requests, retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class AuthUnavailable(GatewayError):
    """A JWT issuer's signing keys are unavailable (never fetched, or older than the stale window),
    so no token of that issuer can be checked: try again after ``retry_after_seconds``."""

    status = 503
    code = "auth_unavailable"
    default_message = "the identity provider's signing keys are unavailable"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__()
        self.retry_after_seconds = retry_after_seconds


class UpstreamError(GatewayError):
    """The upstream did not give us a usable answer."""

    def __init__(
        self, message: str | None = None, *, outcome: str = "error", retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.retry_after_seconds = retry_after_seconds


class UpstreamRejected(UpstreamError):
    status = 502
    code = "upstream_error"
    default_message = "the upstream service refused the request or answered garbage"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"
    default_message = "the upstream service is unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    default_message = "the upstream service did not answer in time"


class ConfigError(Exception):
    """Configuration is unusable; ``problems`` names each bad key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
