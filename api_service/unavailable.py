"""Which exceptions mean "a backing service is down" rather than "this request is wrong".

Shared by the HTTP layer (a 503 with Retry-After) and the event consumer (hold the message
and retry), so it belongs to neither.
"""

from __future__ import annotations

import asyncio

import aiormq
import botocore.exceptions
from aio_pika.exceptions import AMQPError
from sqlalchemy import exc as sa_exc


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def is_broker_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, AMQPError | aiormq.exceptions.AMQPError)


def is_storage_unavailable(exc: BaseException) -> bool:
    return isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ReadTimeoutError,
    )


def unavailable_dependency(exc: BaseException) -> str | None:
    """The name of the dependency ``exc`` says is down, for a 503 message; None otherwise."""
    if is_database_unavailable(exc):
        return "the database"
    if is_broker_unavailable(exc):
        return "the message broker"
    if is_storage_unavailable(exc):
        return "object storage"
    if isinstance(exc, ConnectionError | asyncio.TimeoutError):
        return "a backing service"
    return None
