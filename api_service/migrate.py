"""Schema migrations (Alembic), run programmatically: no alembic.ini needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.entrypoint import start
from shared.settings import SettingsError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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


def main() -> None:
    settings = start()
    url = settings.database.url.get_secret_value()
    asyncio.run(_create_database(url))
    upgrade(url)


if __name__ == "__main__":
    main()
