"""Reading a secret from the file a ``*_FILE`` variable names (a Kubernetes Secret mounted as a file).

One reader for every such variable (the cloud credentials, the URL-signing keys, the Redis URL):
at most ``MAX_FILE_BYTES``, UTF-8 (a leading byte-order mark dropped), surrounding white space
stripped. Its messages name the variable and the path, never the contents.
"""

from __future__ import annotations

MAX_FILE_BYTES = 64 * 1024


class UnusableValue(Exception):
    """A value could not be used; the message names the variable (or file), never the value."""


def read_secret_file(variable: str, path: str) -> str:
    """The stripped contents of a file named by ``variable``; empty when the file is empty.
    Raises ``UnusableValue`` naming the variable and path when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UnusableValue(f"{variable}: cannot read {path}: {reason}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise UnusableValue(f"{variable}: {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not the value
    except UnicodeDecodeError as exc:
        raise UnusableValue(f"{variable}: {path} is not UTF-8 text") from exc
    return text.strip()
