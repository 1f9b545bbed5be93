"""The database-backed rate-limit counter under concurrent first hits: many windows opened at
once (each new window also sweeps expired ones) must count every hit exactly once and never
fail the request. InnoDB answers such bursts with deadlocks now and then (one failed a login
flood with a 503); the counter must absorb them."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from api_service.db.engine import make_sessionmaker
from api_service.ratelimit import Limit, count_hit

BURST = 40


async def test_a_burst_of_new_and_shared_windows_counts_every_hit(db: AsyncEngine) -> None:
    sessions = make_sessionmaker(db)
    run = uuid.uuid4().hex
    per_subject = Limit(f"burst_subject_{run[:8]}", 5, 3600)
    shared = Limit(f"burst_shared_{run[:8]}", 5, 3600)
    now = time.time()

    async def attempt(i: int) -> tuple[int, int]:
        # Like a login flood: one shared bucket (the address), one new bucket each (the email).
        shared_hits, _ = await count_hit(sessions, shared, run, now)
        own_hits, _ = await count_hit(sessions, per_subject, f"{run}-{i}", now)
        return shared_hits, own_hits

    for _ in range(5):
        # Expired windows for the new windows' sweeps to delete, as a live table has.
        expired = Limit(f"burst_expired_{run[:8]}", 5, 60)
        for i in range(150):
            await count_hit(sessions, expired, f"{run}-{i}", now - 7200)
        results = await asyncio.gather(*(attempt(i) for i in range(BURST)))
        assert all(own == 1 for _, own in results), results
        run = uuid.uuid4().hex
    # The shared bucket of the last burst saw each of its hits exactly once, in some order.
    assert sorted(shared for shared, _ in results) == list(range(1, BURST + 1))
