"""What a TLS failure says, in words without data: OpenSSL's reason, for every outbound client
(the upstream's connections, the identity provider's keys, credential endpoints, Redis)."""

from __future__ import annotations

import ssl


def tls_error_in(error: BaseException | None) -> ssl.SSLError | None:
    """``error``, or the first of its causes, that is a TLS failure; ``None`` if none is."""
    cause = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    return cause


def tls_reason(error: BaseException) -> str:
    """OpenSSL's reason for a TLS failure: the certificate check's message (``certificate has
    expired``), else the library's reason, else the error's kind. Names and states only."""
    return getattr(error, "verify_message", None) or getattr(error, "reason", None) or type(error).__name__
