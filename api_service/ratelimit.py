"""Fixed-window rate limits whose counters live in the database, so every API replica sees
the same counts (a per-process counter would multiply the limit by the replica count).

One statement counts a hit: ``INSERT … ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1)``
creates the window's row or increments it atomically, and hands the new count back through
the connection's last-insert-id, so there is no read-modify-write race and one round trip.

The ``limits`` library was not used: its shared backends are Redis, Memcached and MongoDB,
none of which this project runs; the database is already the one source of shared state.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from dataclasses import dataclass

import structlog
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.context import SESSIONS, SETTINGS
from api_service.http.errors import ApiError

log = structlog.get_logger(__name__)

# Expired windows removed per new window opened: keeps the table small without a janitor.
_SWEEP_BATCH = 100

_HIT = text(
    "INSERT INTO rate_limits (bucket, window_start, hits, expires_at) "
    "VALUES (:bucket, :window_start, LAST_INSERT_ID(1), :expires_at) "
    "ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1)"
)
_SWEEP = text("DELETE FROM rate_limits WHERE expires_at < :now LIMIT :batch")


@dataclass(frozen=True)
class Limit:
    """At most ``count`` hits per ``window`` seconds on one bucket."""

    name: str
    count: int
    window: int


def bucket_key(limit: Limit, subject: str) -> str:
    # Subjects (emails, addresses) are hashed: fixed length, nothing personal in the table.
    digest = hashlib.sha256(subject.encode()).hexdigest()[:40]
    return f"{limit.name}:{digest}"


class RateLimited(ApiError):
    def __init__(self, message: str, retry_after: int, limit: str) -> None:
        super().__init__(
            429,
            "rate_limited",
            message,
            headers={"Retry-After": str(retry_after)},
            details=[{"limit": limit, "retry_after": retry_after}],
        )


# InnoDB error codes after which the statement's transaction was rolled back and can simply
# be run again: deadlock, lock wait timeout. Bursts of new windows hit them (gap locks).
_LOCK_CONFLICTS = frozenset({1213, 1205})
_HIT_ATTEMPTS = 5


def _is_lock_conflict(exc: DBAPIError) -> bool:
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in _LOCK_CONFLICTS


async def count_hit(
    sessions: async_sessionmaker[AsyncSession], limit: Limit, subject: str, now: float
) -> tuple[int, int]:
    """Count one hit; returns (hits in the current window, seconds until it ends)."""
    window_start = int(now // limit.window) * limit.window
    window_end = window_start + limit.window
    params = {
        "bucket": bucket_key(limit, subject),
        "window_start": window_start,
        "expires_at": window_end,
    }
    for attempt in range(1, _HIT_ATTEMPTS + 1):
        try:
            async with sessions() as session, session.begin():
                result = await session.execute(_HIT, params)
                hits = int(result.lastrowid)  # type: ignore[attr-defined]
            break
        except DBAPIError as exc:
            # Rolled back, so nothing was counted: run it again.
            if not _is_lock_conflict(exc) or attempt == _HIT_ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))
    if hits == 1:
        await _sweep(sessions, now)
    return hits, max(1, math.ceil(window_end - now))


async def _sweep(sessions: async_sessionmaker[AsyncSession], now: float) -> None:
    """Housekeeping apart from the count: concurrent sweeps lock the same expired rows, and the
    loser of such a deadlock leaves the rows to the next window's sweep rather than fail."""
    try:
        async with sessions() as session, session.begin():
            await session.execute(_SWEEP, {"now": int(now), "batch": _SWEEP_BATCH})
    except DBAPIError as exc:
        if not _is_lock_conflict(exc):
            raise
        log.debug("rate limit sweep skipped", reason=str(exc.orig))


async def enforce(request: web.Request, limit: Limit, subject: str, what: str) -> None:
    """Count a hit of ``subject`` against ``limit``; 429 with Retry-After when over it."""
    hits, remaining = await count_hit(request.app[SESSIONS], limit, subject, time.time())
    if hits > limit.count:
        log.info("rate limited", limit=limit.name, hits=hits)
        raise RateLimited(
            f"too many {what}: at most {limit.count} per {limit.window} s, retry in {remaining} s",
            remaining,
            limit.name,
        )


def client_address(request: web.Request) -> str:
    """The caller's address: the peer, or the entry ``trusted_proxy_hops`` from the right of
    X-Forwarded-For when that many proxies append to it (entries further left are
    client-supplied and could be forged)."""
    hops = request.app[SETTINGS].limits.trusted_proxy_hops
    if hops:
        forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote or "unknown"


def auth_limits(request: web.Request) -> tuple[Limit, Limit]:
    limits = request.app[SETTINGS].limits
    return (
        Limit("auth_ip", limits.auth_ip_attempts, limits.auth_ip_window),
        Limit("auth_account", limits.auth_account_attempts, limits.auth_account_window),
    )


async def enforce_auth_attempt(request: web.Request, email: str) -> None:
    """Before any password hashing: login and register attempts per address and per email."""
    per_ip, per_account = auth_limits(request)
    await enforce(request, per_ip, client_address(request), "login or register attempts")
    await enforce(request, per_account, email.lower(), "attempts for this account")


async def enforce_initiate(request: web.Request, user_id: int) -> None:
    limits = request.app[SETTINGS].limits
    limit = Limit("initiate", limits.initiate_per_user, limits.initiate_window)
    await enforce(request, limit, str(user_id), "uploads started")
