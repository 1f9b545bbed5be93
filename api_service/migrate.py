"""Schema migrations (Alembic), run programmatically: no alembic.ini needed.

``video-migrate`` runs as an initContainer of every API pod, so several replicas may start it
at once: a MySQL named lock (GET_LOCK, held by one connection for the whole upgrade and freed
by the server if the process dies) lets one upgrade at a time; the others wait, then find the
schema at head and do nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.entrypoint import start
from shared.settings import SettingsError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Longer than any upgrade should take; a replica still waiting after it fails and restarts.
LOCK_TIMEOUT_SECONDS = 600


class MigrationLockTimeout(Exception):
    """Another ``video-migrate`` held the lock for longer than LOCK_TIMEOUT_SECONDS."""


def lock_name(database: str) -> str:
    """Named locks are server-wide: one per database (MySQL caps names at 64 characters)."""
    return f"video-migrate:{database}"[:64]


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """Upgrade the database at ``database_url`` to the newest revision (blocking)."""
    command.upgrade(alembic_config(database_url), "head")


async def _create_database(database_url: str) -> None:
    url = make_url(database_url)
    name = url.database
    if not name or "`" in name:
        raise SettingsError("invalid setting database.url: no usable database name")
    engine = create_async_engine(url.set(database=""))
    try:
        async with engine.begin() as conn:
            # Asked first: CREATE ... IF NOT EXISTS on an existing database makes the driver
            # log a warning on every start.
            exists = await conn.scalar(
                text("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"),
                {"name": name},
            )
            if not exists:
                await conn.execute(
                    text(
                        f"CREATE DATABASE IF NOT EXISTS `{name}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
                )
    finally:
        await engine.dispose()


async def migrate(database_url: str, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
    """Create the database if needed and upgrade it to head under the migration lock."""
    await _create_database(database_url)
    url: URL = make_url(database_url)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            name = lock_name(url.database or "")
            got = await conn.scalar(
                text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": name, "timeout": lock_timeout},
            )
            if got != 1:
                raise MigrationLockTimeout(f"{name} still held after {lock_timeout} s")
            try:
                # Alembic's env.py runs its own event loop: give it a thread.
                await asyncio.to_thread(upgrade, database_url)
            finally:
                await conn.scalar(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    finally:
        await engine.dispose()


def main() -> None:
    settings = start()
    asyncio.run(migrate(settings.database.url.get_secret_value()))


if __name__ == "__main__":
    main()
