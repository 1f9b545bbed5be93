"""``@operation`` reads what a handler's parameters name from the request, and documents the
same thing: the bearer user, the query model, the body model. A parameter it cannot read is
refused when the handler's module is imported."""

from __future__ import annotations

import pytest
from aiohttp import web

from api_service.http.operations import DeclaredHandler, operation, operation_of
from api_service.http.schemas import RegisterRequest, VideoListQuery


async def _everything(
    request: web.Request, user_id: int, query: VideoListQuery, body: RegisterRequest
) -> web.Response:
    return web.Response()


async def _optional_user(request: web.Request, user_id: int | None) -> web.Response:
    return web.Response()


async def _nothing(request: web.Request) -> web.Response:
    return web.Response()


def test_the_parameters_are_what_the_operation_documents() -> None:
    op = operation_of(operation("s", "t", status=201)(_everything))
    assert op is not None
    assert (op.auth, op.query, op.request, op.status) == (
        "bearer",
        VideoListQuery,
        RegisterRequest,
        201,
    )
    assert op.error_statuses == {400, 401, 413}

    op = operation_of(operation("s", "t")(_optional_user))
    assert op is not None and (op.auth, op.query, op.request) == ("optional", None, None)

    op = operation_of(operation("s", "t", auth="playback")(_nothing))
    assert op is not None and (op.auth, op.error_statuses) == ("playback", frozenset({401}))


async def _untyped_body(request: web.Request, body: dict[str, str]) -> web.Response:
    return web.Response()


async def _string_user(request: web.Request, user_id: str) -> web.Response:
    return web.Response()


async def _unknown(request: web.Request, video_id: int) -> web.Response:
    return web.Response()


async def _no_request(body: RegisterRequest) -> web.Response:
    return web.Response()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (_untyped_body, "body must be annotated with a pydantic model"),
        (_string_user, "user_id must be int or int | None"),
        (_unknown, r"parameters \['video_id'\] are not read from the request"),
        (_no_request, "the first parameter must be request"),
    ],
)
def test_parameters_it_cannot_read_are_refused(handler: DeclaredHandler, reason: str) -> None:
    with pytest.raises(TypeError, match=reason):
        operation("s", "t")(handler)


def test_a_bearer_user_does_not_go_with_a_query_token() -> None:
    with pytest.raises(TypeError, match="without a \\?token= auth"):
        operation("s", "t", auth="events")(_optional_user)
