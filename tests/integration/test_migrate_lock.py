"""video-migrate under its named lock against the real MariaDB: API replicas starting at
once (one initContainer each) upgrade one at a time and all succeed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from api_service.migrate import MigrationLockTimeout, alembic_config, lock_name, migrate
from shared.settings import Settings


@pytest.fixture
async def fresh_url(settings: Settings) -> AsyncIterator[str]:
    """URL of a database that does not exist yet (migrate creates it); dropped afterwards."""
    url = make_url(settings.database.url.get_secret_value())
    url = url.set(database=f"{url.database}_mig")
    server = create_async_engine(url.set(database=""))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        async with server.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
        await server.dispose()


class HeldLock(NamedTuple):
    conn: AsyncConnection  # the connection holding it
    name: str


@pytest.fixture
async def held_lock(fresh_url: str) -> AsyncIterator[HeldLock]:
    """The migration lock of ``fresh_url``'s database, taken as another replica's migrate
    would hold it, on a connection to the server (the database does not exist yet)."""
    url = make_url(fresh_url)
    name = lock_name(url.database or "")
    holder = create_async_engine(url.set(database=""))
    try:
        async with holder.connect() as conn:
            assert await conn.scalar(text("SELECT GET_LOCK(:n, 0)"), {"n": name}) == 1
            yield HeldLock(conn, name)
    finally:
        await holder.dispose()


async def _waiting_for(conn: AsyncConnection, name: str) -> int:
    """Connections blocked in GET_LOCK(name) right now."""
    count = await conn.scalar(
        text(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE ID <> CONNECTION_ID() AND INFO LIKE :query"
        ),
        {"query": f"SELECT GET_LOCK('{name}'%"},
    )
    return int(count or 0)


async def test_concurrent_upgrades_wait_for_the_lock_and_all_succeed(
    fresh_url: str, held_lock: HeldLock
) -> None:
    conn, name = held_lock
    upgrades = [asyncio.create_task(migrate(fresh_url)) for _ in range(2)]
    async with asyncio.timeout(60):
        while await _waiting_for(conn, name) < 2:
            assert not any(t.done() for t in upgrades), [t.result() for t in upgrades]
            await asyncio.sleep(0.1)
    # Both blocked before touching the schema: no alembic_version table yet.
    url = make_url(fresh_url)
    tables = await conn.scalar(
        text("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db"),
        {"db": url.database},
    )
    assert tables == 0
    await conn.scalar(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
    async with asyncio.timeout(120):
        await asyncio.gather(*upgrades)

    head = ScriptDirectory.from_config(alembic_config(fresh_url)).get_current_head()
    migrated = create_async_engine(url)
    try:
        async with migrated.connect() as migrated_conn:
            versions = (
                await migrated_conn.scalars(text("SELECT version_num FROM alembic_version"))
            ).all()
            assert versions == [head]
            # Re-applying at head is a no-op that succeeds.
        await migrate(fresh_url)
    finally:
        await migrated.dispose()


async def test_lock_held_too_long_fails_clearly(fresh_url: str, held_lock: HeldLock) -> None:
    with pytest.raises(MigrationLockTimeout, match="still held"):
        await migrate(fresh_url, lock_timeout=1)
