"""Who is calling: the user id from the ``Authorization: Bearer`` header, or the grant of a
video-scoped token in the query string."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from aiohttp import web

from api_service.auth.tokens import PlaybackGrant, TokenError, decode_access_token
from api_service.context import SETTINGS
from api_service.http.errors import not_found, unauthorized
from shared.settings import AuthSettings

GrantDecoder = Callable[[AuthSettings, str], PlaybackGrant]


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


def query_token_grant(
    request: web.Request,
    video_id: int,
    kind: Literal["playback", "events"],
    decode: GrantDecoder,
) -> tuple[str, PlaybackGrant]:
    """The ``?token=`` of a ``kind`` URL and what it grants. Players and EventSource cannot
    send an Authorization header, so these tokens travel in the query string. A missing or
    bad token is a 401; a token scoped to another video is a 404, like a video not there."""
    token = request.query.get("token")
    if not token:
        raise unauthorized(f"missing {kind} token (use the video's {kind}_url)")
    try:
        grant = decode(request.app[SETTINGS].auth, token)
    except TokenError as exc:
        raise unauthorized(f"{kind} {exc}") from None
    if grant.video_id != video_id:
        raise not_found("video")
    return token, grant
