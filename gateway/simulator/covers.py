"""Cover images the OBS way: V2 pre-signed URLs, their verification, and the PNG they lead to.

A cover URL is ``{base}/obs/metastudio-covers/{job_id}_cover.png?AccessKeyId=..&Expires=..&
Signature=..`` where ``Signature`` is the URL-encoded base64 HMAC-SHA1 of
``GET\\n\\n\\n{Expires}\\n/metastudio-covers/{object}``, as OBS signs query-string
authentication. Pure: no I/O, the time comes in as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote
from xml.sax.saxutils import escape

BUCKET = "metastudio-covers"
COVER_TTL_SECONDS = 86_400
COVER_SIZE_PIXELS = 96
_OBJECT_NAME = re.compile(r"([0-9a-f]{32})_cover\.png")
_EXPIRES = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class ObsDenial:
    """Why OBS refuses a download: the HTTP status and the ``<Code>``/``<Message>`` of its XML body."""

    status: int
    code: str
    message: str


def _same(left: str, right: str) -> bool:
    """Constant-time equality of two texts (any characters)."""
    return hmac.compare_digest(left.encode("utf-8", "surrogateescape"), right.encode("utf-8", "surrogateescape"))


def object_name(job_id: str) -> str:
    """The cover object's key in the bucket."""
    return f"{job_id}_cover.png"


def job_id_of(name: str) -> str | None:
    """The job id a cover object key names, or ``None`` if it is not a cover key."""
    match = _OBJECT_NAME.fullmatch(name)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class ObsUrlSigner:
    """Issues and checks pre-signed cover URLs under one OBS key pair."""

    access_key_id: str
    secret: str = field(repr=False)

    def _signature(self, name: str, expires: int) -> str:
        """Base64 HMAC-SHA1 over the OBS V2 string-to-sign of a GET of ``name``."""
        text = f"GET\n\n\n{expires}\n/{BUCKET}/{name}"
        digest = hmac.new(self.secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")

    def presign(self, *, base_url: str, job_id: str, issued_at: float) -> str:
        """A download URL for the job's cover, valid for 24 hours from ``issued_at``."""
        name = object_name(job_id)
        expires = math.floor(issued_at) + COVER_TTL_SECONDS
        sig = quote(self._signature(name, expires), safe="")
        return (
            f"{base_url}/obs/{BUCKET}/{name}"
            f"?AccessKeyId={quote(self.access_key_id, safe='')}&Expires={expires}&Signature={sig}"
        )

    def check(self, *, name: str, query: Sequence[tuple[str, str]], now: float) -> ObsDenial | None:
        """``None`` when the decoded query authorises downloading ``name`` at ``now``."""
        params = dict(query)
        if len(params) != len(query) or not {"AccessKeyId", "Expires", "Signature"} <= params.keys():
            return ObsDenial(
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and AccessKeyId parameters",
            )
        if not _same(params["AccessKeyId"], self.access_key_id):
            return ObsDenial(
                403, "InvalidAccessKeyId", "The OBS Access Key Id you provided does not exist in our records."
            )
        expires = params["Expires"]
        valid_expires = _EXPIRES.fullmatch(expires) is not None
        if not valid_expires or not _same(params["Signature"], self._signature(name, int(expires))):
            return ObsDenial(
                403,
                "AccessDenied",
                "The request signature we calculated does not match the signature you provided.",
            )
        if int(expires) <= now:
            return ObsDenial(403, "AccessDenied", "Request has expired")
        return None


def error_xml(denial: ObsDenial, request_id: str) -> bytes:
    """The XML body OBS answers an error with."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(denial.code)}</Code><Message>{escape(denial.message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId><HostId>simulator</HostId></Error>"
    ).encode()


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def cover_png(job_id: str) -> bytes:
    """A real 96x96 RGB PNG, one solid colour taken from the job id."""
    colour = bytes.fromhex(job_id[:6])
    row = b"\x00" + colour * COVER_SIZE_PIXELS
    header = struct.pack(">IIBBBBB", COVER_SIZE_PIXELS, COVER_SIZE_PIXELS, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(row * COVER_SIZE_PIXELS)),
            _chunk(b"IEND", b""),
        )
    )
