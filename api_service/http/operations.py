"""An operation's declaration, attached to its handler where its route is registered: the
OpenAPI metadata and, from the same words, what the handler is given.

``api_service.openapi`` builds the document by walking the router, so the method and path
come from the route itself and are written once. The declared auth, query model and body
model are read before the handler runs and passed to it as ``user_id``, ``query`` and
``body``, so what the document promises is what the handler gets (a handler whose parameters
do not match its declaration fails at import)::

    @routes.post("/api/v1/users/register")
    @operation("Create an account", "users", status=201, request=RegisterRequest, ...)
    async def register(request: web.Request, body: RegisterRequest) -> web.Response: ...
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from api_service.auth.current import optional_user_id, require_user_id
from api_service.http.body import read_json

Auth = Literal["none", "bearer", "optional", "playback", "events"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DeclaredHandler = Callable[..., Awaitable[web.StreamResponse]]

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
) -> Callable[[DeclaredHandler], Handler]:
    """Declare the decorated handler (place it below the route decorator). ``errors`` are
    the error statuses beyond those the declaration implies (``Operation.error_statuses``)."""
    op = Operation(summary, tag, status, request, response, query, auth, errors, content_type)

    def attach(handler: DeclaredHandler) -> Handler:
        _check_parameters(op, handler)

        @functools.wraps(handler)
        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(request, **await declared_inputs(op, request))

        setattr(handle, _ATTRIBUTE, op)
        return handle

    return attach


async def declared_inputs(op: Operation, request: web.Request) -> dict[str, Any]:
    """What ``op`` declares, read from the request in the order clients are told why they
    are refused: who is calling (401), then the query (400), then the body (400, 413)."""
    inputs: dict[str, Any] = {}
    if op.auth == "bearer":
        inputs["user_id"] = require_user_id(request)
    elif op.auth == "optional":
        inputs["user_id"] = optional_user_id(request)
    if op.query is not None:
        inputs["query"] = op.query.model_validate(dict(request.query))
    if op.request is not None:
        inputs["body"] = await read_json(request, op.request)
    return inputs


def _check_parameters(op: Operation, handler: DeclaredHandler) -> None:
    """The handler takes the request and exactly what ``declared_inputs`` passes it."""
    expected: dict[str, object] = {"request": web.Request}
    if op.auth == "bearer":
        expected["user_id"] = int
    elif op.auth == "optional":
        expected["user_id"] = int | None
    if op.query is not None:
        expected["query"] = op.query
    if op.request is not None:
        expected["body"] = op.request
    hints = typing.get_type_hints(handler)
    hints.pop("return", None)
    if hints != expected:
        raise TypeError(
            f"{handler.__qualname__} takes {hints}, but its operation passes {expected}"
        )


def operation_of(handler: object) -> Operation | None:
    """The metadata attached to ``handler``; None for undocumented routes."""
    op = getattr(handler, _ATTRIBUTE, None)
    return op if isinstance(op, Operation) else None
