"""An operation's declaration, attached to its handler where its route is registered: the
OpenAPI metadata, and what the handler is given.

``api_service.openapi`` builds the document by walking the router, so the method and path
come from the route itself and are written once. The handler's parameters say the rest of
what a request carries, and are read from it before the handler runs::

    @routes.post("/api/v1/videos/upload/initiate")
    @operation("Create a video ...", "videos", status=201, response=InitiateUploadResponse)
    async def initiate_upload(
        request: web.Request, user_id: int, body: InitiateUploadRequest
    ) -> web.Response: ...

``user_id: int`` is the bearer token's user (401 without one), ``user_id: int | None`` an
optional token, ``query: SomeModel`` the validated query string and ``body: SomeModel`` the
validated JSON body (400, 413); the document's security, parameters and request body come
from the same annotations. Any other parameter is refused when the module is imported.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from api_service.auth.current import optional_user_id, require_user_id
from api_service.http.body import read_json

QueryTokenAuth = Literal["playback", "events"]
Auth = Literal["none", "bearer", "optional", QueryTokenAuth]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DeclaredHandler = Callable[..., Awaitable[web.StreamResponse]]

_ATTRIBUTE = "__openapi_operation__"


@dataclasses.dataclass(frozen=True)
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
    response: type[BaseModel] | None = None,
    auth: QueryTokenAuth | None = None,
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
) -> Callable[[DeclaredHandler], Handler]:
    """Declare the decorated handler (place it below the route decorator). ``auth`` names a
    ``?token=`` the handler checks itself (playback, events); bearer auth comes from a
    ``user_id`` parameter. ``errors`` are the error statuses beyond those the declaration
    implies (``Operation.error_statuses``)."""
    declared = Operation(
        summary,
        tag,
        status,
        response=response,
        auth=auth or "none",
        errors=errors,
        content_type=content_type,
    )

    def attach(handler: DeclaredHandler) -> Handler:
        op = _with_parameters(declared, handler)

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


def _with_parameters(declared: Operation, handler: DeclaredHandler) -> Operation:
    """``declared`` completed with what the handler's parameters read from the request."""
    name = handler.__qualname__
    hints = typing.get_type_hints(handler)
    hints.pop("return", None)
    if hints.pop("request", None) is not web.Request:
        raise TypeError(f"{name}: the first parameter must be request: web.Request")
    auth = declared.auth
    if "user_id" in hints:
        user_id = hints.pop("user_id")
        if auth != "none" or user_id not in (int, int | None):
            raise TypeError(f"{name}: user_id must be int or int | None, without a ?token= auth")
        auth = "bearer" if user_id is int else "optional"
    models: dict[str, type[BaseModel]] = {}
    for parameter in ("query", "body"):
        model = hints.pop(parameter, None)
        if model is None:
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{name}: {parameter} must be annotated with a pydantic model")
        models[parameter] = model
    if hints:
        raise TypeError(f"{name}: parameters {sorted(hints)} are not read from the request")
    return dataclasses.replace(
        declared, request=models.get("body"), query=models.get("query"), auth=auth
    )


def operation_of(handler: object) -> Operation | None:
    """The metadata attached to ``handler``; None for undocumented routes."""
    op = getattr(handler, _ATTRIBUTE, None)
    return op if isinstance(op, Operation) else None
