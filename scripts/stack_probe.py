"""What scripts/stack.sh asks the project's own settings and drivers.

    python scripts/stack_probe.py managed           which services the settings leave to stack.sh
    python scripts/stack_probe.py database create   create the configured database if missing
    python scripts/stack_probe.py database check    only report whether it exists
    python scripts/stack_probe.py amqp [check]      log in to the configured broker
    python scripts/stack_probe.py bucket create     create the configured bucket if missing
    python scripts/stack_probe.py bucket check      only report whether it exists

Every check goes through the same settings loader and client libraries the services use, so
"stack.sh up" succeeding means the API and the worker can reach what it started.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import aio_pika
from botocore.exceptions import ClientError, EndpointConnectionError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from shared.s3 import NOT_FOUND_CODES, error_code, s3_client
from shared.settings import DatabaseSettings, RabbitMQSettings, S3Settings, load_settings

MISSING_BUCKET = NOT_FOUND_CODES | {"NoSuchBucket"}
RETRIES = 30


def managed() -> int:
    """One line per service: "managed" when its setting is the shipped local default (stack.sh
    installs, starts and provisions it), "custom" when the user pointed it elsewhere."""
    settings = load_settings()
    pairs = {
        "database": settings.database.url == DatabaseSettings().url,
        "rabbitmq": settings.rabbitmq.url == RabbitMQSettings().url,
        "s3": settings.s3.endpoint_url == S3Settings().endpoint_url,
    }
    for name, is_default in pairs.items():
        print(f"{name}={'managed' if is_default else 'custom'}")
    return 0


async def _retrying(what: str, attempt: Callable[[], Awaitable[str]]) -> int:
    """Retry while a freshly started server settles; the last error is reported on one line."""
    last: Exception | None = None
    for _ in range(RETRIES):
        try:
            print(await attempt())
            return 0
        except (DBAPIError, OSError, ClientError, EndpointConnectionError) as exc:
            last = exc
            await asyncio.sleep(1)
    print(f"{what}: failed ({str(last).splitlines()[0] if last else 'unknown'})", file=sys.stderr)
    return 1


async def database(mode: str) -> int:
    url = make_url(load_settings().database.url.get_secret_value())
    name = url.database
    if not name:
        print("database: the configured URL names no database", file=sys.stderr)
        return 1

    async def attempt() -> str:
        engine = create_async_engine(url.set(database=""))
        try:
            async with engine.begin() as conn:
                found = await conn.scalar(text("SHOW DATABASES LIKE :name"), {"name": name})
                if found:
                    return f"database {name}: exists (user {url.username}@{url.host})"
                if mode == "check":
                    raise LookupError(f"database {name}: missing (user {url.username}@{url.host})")
                await conn.execute(
                    text(
                        f"CREATE DATABASE IF NOT EXISTS `{name}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
                )
                return f"database {name}: created (user {url.username}@{url.host})"
        finally:
            await engine.dispose()

    if mode == "check":
        try:
            print(await attempt())
            return 0
        except (DBAPIError, OSError, LookupError) as exc:
            print(str(exc).splitlines()[0])
            return 1
    return await _retrying(f"database {name} as {url.username}@{url.host}", attempt)


async def amqp(retry: bool) -> int:
    raw = load_settings().rabbitmq.url.get_secret_value()
    safe = make_url(raw.replace("amqp", "mysql", 1))  # only to print user@host, never the password

    async def attempt() -> str:
        connection = await aio_pika.connect(raw, timeout=5)
        await connection.close()
        return f"rabbitmq: login ok (user {safe.username}@{safe.host})"

    if not retry:
        try:
            print(await attempt())
            return 0
        except OSError as exc:
            print(f"rabbitmq: login failed (user {safe.username}@{safe.host}: {exc})")
            return 1
    return await _retrying(f"rabbitmq as {safe.username}@{safe.host}", attempt)


async def bucket(mode: str) -> int:
    s3 = load_settings().s3

    async def attempt() -> str:
        async with s3_client(s3) as client:
            try:
                await client.head_bucket(Bucket=s3.bucket)
                return f"bucket {s3.bucket}: exists"
            except ClientError as exc:
                if error_code(exc) not in MISSING_BUCKET:
                    raise
            if mode == "check":
                return f"bucket {s3.bucket}: missing"
            try:
                await client.create_bucket(Bucket=s3.bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
                return f"bucket {s3.bucket}: exists"
            return f"bucket {s3.bucket}: created"

    if mode == "check":
        try:
            result = await attempt()
        except (ClientError, EndpointConnectionError, OSError) as exc:
            print(f"bucket {s3.bucket}: unknown ({exc})")
            return 1
        print(result)
        return 0 if result.endswith("exists") else 1
    return await _retrying(f"bucket {s3.bucket}", attempt)


def main(argv: list[str]) -> int:
    match argv:
        case ["managed"]:
            return managed()
        case ["database", ("create" | "check") as mode]:
            return asyncio.run(database(mode))
        case ["amqp"]:
            return asyncio.run(amqp(retry=True))
        case ["amqp", "check"]:
            return asyncio.run(amqp(retry=False))
        case ["bucket", ("create" | "check") as mode]:
            return asyncio.run(bucket(mode))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
