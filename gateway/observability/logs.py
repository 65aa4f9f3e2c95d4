"""Process logs (not the access log): JSON lines on stderr, with nothing secret in them.

``serve`` and ``demo`` both call ``configure_logging`` first, so their start-up and drain lines,
and anything aiohttp or asyncio logs, come out as one JSON object per line. ``log_event`` adds
machine-readable fields (``event``, ``port``...) beside the message.

aiohttp's server logs requests it cannot parse (a header line too long, say) with a traceback
whose message quotes the start of the offending line, which may be an ``Authorization``
header. ``RedactParseErrors`` turns those records into one line naming the error type only.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

_FIELDS = "gateway_fields"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the fields given to
    ``log_event``, and the exception type (never its text or traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, _FIELDS, None)
        if isinstance(fields, dict):
            entry.update((key, value) for key, value in fields.items() if key not in entry)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return orjson.dumps(entry).decode()


def log_event(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Log ``message`` at INFO with ``fields`` as keys of its JSON line."""
    logger.info(message, extra={_FIELDS: fields})


class RedactParseErrors(logging.Filter):
    """Strip the quoted request text from aiohttp's parse-error records, and log them as the
    warnings they are: a client's malformed request is no error of the server's (at aiohttp's
    level, error, any client could raise error-level lines, and the alerts on them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            record.msg = f"rejected a malformed HTTP request ({type(record.exc_info[1]).__name__})"
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Send process logs to stderr as JSON lines, parse errors redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.server").addFilter(RedactParseErrors())
    logging.getLogger("aiohttp.access").disabled = True
