"""Who is calling: the user id from the ``Authorization: Bearer`` header."""

from __future__ import annotations

from aiohttp import web

from api_service.auth.tokens import TokenError, decode_access_token
from api_service.context import SETTINGS
from api_service.http.errors import unauthorized


def optional_user_id(request: web.Request) -> int | None:
    """None without an Authorization header; a present but bad token is still a 401."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("expected 'Authorization: Bearer <token>'")
    try:
        return decode_access_token(request.app[SETTINGS].auth, token.strip())
    except TokenError as exc:
        raise unauthorized(str(exc)) from None


def require_user_id(request: web.Request) -> int:
    user_id = optional_user_id(request)
    if user_id is None:
        raise unauthorized()
    return user_id
