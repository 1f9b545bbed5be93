"""OpenAPI metadata, attached to each handler where its route is registered.

``api_service.openapi`` builds the document by walking the router, so the method and path
come from the route itself and are written once::

    @routes.post("/api/v1/users/register")
    @operation("Create an account", "users", status=201, request=RegisterRequest, ...)
    async def register(request: web.Request) -> web.Response: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

Auth = Literal["none", "bearer", "optional", "playback", "events"]
HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])

_ATTRIBUTE = "__openapi_operation__"


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    status: int = 200
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    auth: Auth = "none"
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"

    @property
    def error_statuses(self) -> frozenset[int]:
        """``errors`` plus what the declaration implies: a JSON body can be malformed or
        invalid (400, ``read_json``) or over ``server.max_body_bytes`` (413, aiohttp's
        ``client_max_size``); a query model can reject the query (400); and every kind of
        auth answers a missing or bad token with a 401 (``api_service.auth.current``)."""
        implied = set(self.errors)
        if self.request is not None:
            implied |= {400, 413}
        if self.query is not None:
            implied.add(400)
        if self.auth != "none":
            implied.add(401)
        return frozenset(implied)


def operation(
    summary: str,
    tag: str,
    *,
    status: int = 200,
    request: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: Auth = "none",
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
) -> Callable[[HandlerT], HandlerT]:
    """Document the decorated handler (place it below the route decorator). ``errors`` are
    the error statuses beyond those the declaration implies (``Operation.error_statuses``)."""
    op = Operation(summary, tag, status, request, response, query, auth, errors, content_type)

    def attach(handler: HandlerT) -> HandlerT:
        setattr(handler, _ATTRIBUTE, op)
        return handler

    return attach


def operation_of(handler: object) -> Operation | None:
    """The metadata attached to ``handler``; None for undocumented routes."""
    op = getattr(handler, _ATTRIBUTE, None)
    return op if isinstance(op, Operation) else None
