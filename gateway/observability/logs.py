"""Process logs (not the access log): JSON lines on stderr, with nothing secret in them.

aiohttp's server logs requests it cannot parse (a header line too long, say) with a traceback
whose message quotes the start of the offending line, which may be an ``Authorization``
header. ``RedactParseErrors`` turns those records into one line naming the error type only.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson
from aiohttp.http_exceptions import HttpProcessingError


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the exception type)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return orjson.dumps(entry).decode()


class RedactParseErrors(logging.Filter):
    """Strip the quoted request text from aiohttp's parse-error records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            record.msg = f"rejected a malformed HTTP request ({type(record.exc_info[1]).__name__})"
            record.args = ()
            record.exc_info = None
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
