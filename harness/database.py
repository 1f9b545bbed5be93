"""A database of its own for a test or bench run: created and migrated, dropped at the end."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def _on_server(url: str, statement: str) -> None:
    server = create_async_engine(make_url(url).set(database=""), pool_pre_ping=True)
    try:
        async with server.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await server.dispose()


async def create_database(url: str) -> None:
    """Create the database named in ``url`` and run the API's migrations on it."""
    from api_service.migrate import upgrade  # the API owns the schema

    name = make_url(url).database
    await _on_server(
        url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    await asyncio.to_thread(upgrade, url)


async def drop_database(url: str) -> None:
    await _on_server(url, f"DROP DATABASE IF EXISTS `{make_url(url).database}`")
