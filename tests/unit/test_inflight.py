"""InFlight: what both services' consumers use to wait for, then cancel, deliveries."""

from __future__ import annotations

import asyncio

from shared.inflight import InFlight


async def test_drain_waits_for_tasks_that_finish_and_cancels_the_rest() -> None:
    in_flight = InFlight()
    release = asyncio.Event()
    finished: list[str] = []
    cancelled: list[str] = []

    async def quick() -> None:
        await release.wait()
        finished.append("quick")

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            cancelled.append("stuck")
            raise

    in_flight.spawn(quick())
    in_flight.spawn(stuck())
    assert len(in_flight) == 2
    release.set()
    assert await in_flight.drain(grace=0.2) == 1
    assert finished == ["quick"] and cancelled == ["stuck"]
    assert len(in_flight) == 0


async def test_drain_of_nothing_returns_at_once() -> None:
    in_flight = InFlight()
    async with asyncio.timeout(5):
        assert await in_flight.drain(grace=3600) == 0
