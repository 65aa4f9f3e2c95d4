"""A cache entry as the bytes Redis holds, and back. Pure.

Layout: a 4-byte big-endian header length, the header (JSON: ETag, times, cover links, body
lengths), the body, then the gzip body if there is one. The bodies are stored as they are sent,
so a replica that reads an entry serves it without JSON work. Anything malformed is a
``ValueError``: the caller treats it as a miss.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.cache.entry import CacheEntry, CoverLink

_LENGTH = struct.Struct(">I")


def _links_out(covers: Mapping[str, CoverLink]) -> dict[str, list[str | float]]:
    """Cover links by job id as JSON: ``{job id: [url, expires_at]}``."""
    return {job_id: [link.url, link.expires_at] for job_id, link in covers.items()}


def _links_in(raw: Any) -> dict[str, CoverLink]:
    """The links ``_links_out`` wrote; a wrong shape raises ``ValueError``, ``TypeError`` or the like."""
    return {str(job_id): CoverLink(str(url), float(expires)) for job_id, (url, expires) in raw.items()}


def encode_entry(entry: CacheEntry) -> bytes:
    """The bytes stored for ``entry``."""
    header = orjson.dumps(
        {
            "etag": entry.etag,
            "fetched_at": entry.fetched_at,
            "fresh_until": entry.fresh_until,
            "keep_until": entry.keep_until,
            "earliest_cover_expiry": entry.earliest_cover_expiry,
            "covers": _links_out(entry.covers),
            "body": len(entry.body),
            "gzip": None if entry.gzip_body is None else len(entry.gzip_body),
        }
    )
    return b"".join((_LENGTH.pack(len(header)), header, entry.body, entry.gzip_body or b""))


def decode_entry(data: bytes) -> CacheEntry:
    """The entry ``encode_entry`` stored; ``ValueError`` if ``data`` is not one."""
    try:
        (header_length,) = _LENGTH.unpack_from(data)
        start = _LENGTH.size + header_length
        header = orjson.loads(data[_LENGTH.size : start])
        body_end = start + int(header["body"])
        gzip_length = header["gzip"]
        end = body_end + (0 if gzip_length is None else int(gzip_length))
        if end != len(data):
            raise ValueError("entry lengths do not add up")
        return CacheEntry(
            body=data[start:body_end],
            etag=str(header["etag"]),
            fetched_at=float(header["fetched_at"]),
            fresh_until=float(header["fresh_until"]),
            keep_until=float(header["keep_until"]),
            covers=_links_in(header["covers"]),
            earliest_cover_expiry=(
                None if header["earliest_cover_expiry"] is None else float(header["earliest_cover_expiry"])
            ),
            gzip_body=None if gzip_length is None else data[body_end:end],
        )
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError("not a stored cache entry") from exc


def encode_covers(tenant_id: str, covers: dict[str, CoverLink]) -> bytes:
    """A covers message: a tenant's cover links by job id."""
    return orjson.dumps({"tenant": tenant_id, "covers": _links_out(covers)})


def decode_covers(data: bytes) -> tuple[str, dict[str, CoverLink]]:
    """The tenant id and links of a covers message; ``ValueError`` if it is not one."""
    try:
        message = orjson.loads(data)
        return str(message["tenant"]), _links_in(message["covers"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError("not a covers message") from exc
