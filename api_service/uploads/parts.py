"""S3's multipart rules, applied to what the store reports (never to what a client claims)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from api_service.storage import PartInfo
from shared.settings import MIB, S3_MAX_PART, S3_MAX_PARTS, S3_MIN_PART

_EPOCH = datetime.fromtimestamp(0, UTC)


class PartsRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def suggested_part_size(size: int | None, preferred: int) -> int:
    """``preferred``, raised (in whole MiB) so that ``size`` fits in 10 000 parts."""
    if size is None:
        return preferred
    needed = math.ceil(math.ceil(size / S3_MAX_PARTS) / MIB) * MIB
    return min(max(preferred, needed, S3_MIN_PART), S3_MAX_PART)


def newest_per_number(parts: Sequence[PartInfo]) -> list[PartInfo]:
    """One part per number (the most recently modified) for clients that resume."""
    chosen: dict[int, PartInfo] = {}
    for part in parts:
        seen = chosen.get(part.number)
        if seen is None or (part.modified or _EPOCH) > (seen.modified or _EPOCH):
            chosen[part.number] = part
    return [chosen[n] for n in sorted(chosen)]


def claimed_parts(stored: Sequence[PartInfo], claimed: dict[int, str]) -> list[PartInfo]:
    """The stored parts the client names by number and ETag; every number exactly once."""
    numbers = {p.number for p in stored}
    by_key = {(p.number, p.etag): p for p in stored}
    chosen = [by_key.get((n, claimed[n])) for n in sorted(claimed)]
    if set(claimed) != numbers or any(p is None for p in chosen):
        raise PartsRejected(
            400,
            "parts_mismatch",
            f"invalid parts: they must list each of the {len(numbers)} uploaded part numbers "
            "once with the ETag the store returned (GET the upload to list them)",
        )
    return [p for p in chosen if p is not None]


def total_size(parts: Sequence[PartInfo], limit: int) -> int:
    """Check the stored parts against S3's rules and ``limit``; return the object's size."""
    if not parts:
        raise PartsRejected(409, "upload_not_found", "no parts uploaded yet")
    if len(parts) > S3_MAX_PARTS or parts[-1].number > S3_MAX_PARTS:
        raise PartsRejected(400, "too_many_parts", f"more than {S3_MAX_PARTS} parts")
    for part in parts[:-1]:
        if part.size < S3_MIN_PART:
            raise PartsRejected(
                400,
                "part_too_small",
                f"part {part.number} is {part.size} bytes; every part but the last must be "
                f"at least {S3_MIN_PART} bytes",
            )
    for part in parts:
        if part.size > S3_MAX_PART:
            raise PartsRejected(
                413, "part_too_large", f"part {part.number} is over {S3_MAX_PART} bytes"
            )
    total = sum(part.size for part in parts)
    if total > limit:
        raise PartsRejected(
            413, "file_too_large", f"upload is {total} bytes, over the maximum of {limit} bytes"
        )
    return total
