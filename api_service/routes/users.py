"""Register, log in, who am I."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api_service.auth.passwords import hash_password, verify_password
from api_service.auth.tokens import issue_access_token
from api_service.context import SESSIONS, SETTINGS
from api_service.db.models import User
from api_service.http.errors import ApiError, unauthorized
from api_service.http.operations import operation
from api_service.http.schemas import (
    LoginRequest,
    RegisterRequest,
    TokenResponse,
    UserResponse,
)
from api_service.ratelimit import enforce_auth_attempt

routes = web.RouteTableDef()


@routes.post("/api/v1/users/register")
@operation("Create an account", "users", status=201, response=UserResponse, errors=(409, 429))
async def register(request: web.Request, body: RegisterRequest) -> web.Response:
    await enforce_auth_attempt(request, body.email)
    password_hash = await hash_password(body.password)
    user = User(nickname=body.nickname, email=body.email.lower(), password_hash=password_hash)
    try:
        async with request.app[SESSIONS]() as session, session.begin():
            session.add(user)
    except IntegrityError:
        raise ApiError(409, "email_taken", "a user with this email already exists") from None
    return web.json_response(UserResponse.model_validate(user).model_dump(mode="json"), status=201)


@routes.post("/api/v1/users/login")
@operation("Log in and get a JWT", "users", response=TokenResponse, errors=(401, 429))
async def login(request: web.Request, body: LoginRequest) -> web.Response:
    await enforce_auth_attempt(request, body.email)
    async with request.app[SESSIONS]() as session:
        user = await session.scalar(select(User).where(User.email == body.email.lower()))
    # The hash is verified even for an unknown email so timing reveals nothing.
    if not await verify_password(user.password_hash if user else None, body.password):
        raise unauthorized("invalid email or password")
    assert user is not None
    issued = issue_access_token(request.app[SETTINGS].auth, user.id)
    response = TokenResponse(token=issued.token, expires_at=issued.expires_at)
    return web.json_response(response.model_dump(mode="json"))


@routes.get("/api/v1/me")
@operation("The calling user", "users", response=UserResponse)
async def me(request: web.Request, user_id: int) -> web.Response:
    async with request.app[SESSIONS]() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise unauthorized("the token's user no longer exists")
    return web.json_response(UserResponse.model_validate(user).model_dump(mode="json"))
