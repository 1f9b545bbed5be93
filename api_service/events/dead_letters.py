"""Why a job was dead-lettered, in words a person can read (stored as the video's error)."""

from __future__ import annotations

from typing import Any

from shared.messages import FAILURE_REASON_MAX
from shared.topology import HEADER_FAILURE_REASON

_DEATH_REASONS = {
    "delivery_limit": "the job was dead-lettered after repeatedly failing or crashing workers",
    "rejected": "the job was rejected as malformed or could not be processed",
    "expired": "the job expired before a worker could run it",
    "maxlen": "the job queue was full",
}


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def dead_letter_reason(headers: dict[str, Any] | None) -> str:
    """A reason a person can read, from the worker's header or the broker's x-death."""
    headers = headers or {}
    explicit = headers.get(HEADER_FAILURE_REASON)
    if explicit:
        return _text(explicit)[:FAILURE_REASON_MAX]
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = _text(deaths[0].get("reason", ""))
        return _DEATH_REASONS.get(reason, f"the job was dead-lettered ({reason or 'unknown'})")
    return "the job was dead-lettered"
