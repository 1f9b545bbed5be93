"""``@operation`` passes a handler what its declaration names, so a handler whose parameters
do not match its declaration is refused when its module is imported."""

from __future__ import annotations

import pytest
from aiohttp import web

from api_service.http.operations import DeclaredHandler, operation, operation_of
from api_service.http.schemas import LoginRequest, RegisterRequest, VideoListQuery


def test_matching_parameters_are_accepted_and_the_operation_is_attached() -> None:
    declare = operation("s", "t", request=RegisterRequest, query=VideoListQuery, auth="bearer")

    async def handler(
        request: web.Request, user_id: int, query: VideoListQuery, body: RegisterRequest
    ) -> web.Response:
        return web.Response()

    op = operation_of(declare(handler))
    assert op is not None and op.request is RegisterRequest and op.query is VideoListQuery


def test_optional_auth_passes_a_user_id_that_may_be_none() -> None:
    async def handler(request: web.Request, user_id: int | None) -> web.Response:
        return web.Response()

    operation("s", "t", auth="optional")(handler)
    with pytest.raises(TypeError, match="handler"):
        operation("s", "t", auth="bearer")(handler)


async def _wrong_body(request: web.Request, body: LoginRequest) -> web.Response:
    return web.Response()


async def _no_user(request: web.Request, body: RegisterRequest) -> web.Response:
    return web.Response()


async def _undeclared_query(
    request: web.Request, user_id: int, body: RegisterRequest, query: VideoListQuery
) -> web.Response:
    return web.Response()


@pytest.mark.parametrize("handler", [_wrong_body, _no_user, _undeclared_query])
def test_parameters_that_differ_from_the_declaration_are_refused(
    handler: DeclaredHandler,
) -> None:
    declare = operation("s", "t", request=RegisterRequest, auth="bearer")
    with pytest.raises(TypeError, match=r"but its operation passes"):
        declare(handler)
