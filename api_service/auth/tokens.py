"""JWTs: access tokens for users and short-lived tokens scoped to one video (playback, and
the live-progress stream).

Both are signed with the configured secret and algorithm; decoding pins the algorithm
(so ``alg: none`` and algorithm confusion are refused) and requires exp, iat, sub and iss.
The audience keeps the kinds apart: a playback token is neither an access token nor an events
token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from shared.settings import AuthSettings

ACCESS_AUDIENCE = "video-api"
PLAYBACK_AUDIENCE = "video-playback"
EVENTS_AUDIENCE = "video-events"


class TokenError(Exception):
    """The token is missing, malformed, tampered with, expired or of the wrong kind."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


def _issue(
    settings: AuthSettings,
    subject: str,
    audience: str,
    ttl: int,
    extra: dict[str, Any] | None = None,
) -> IssuedToken:
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl)
    payload: dict[str, Any] = {
        **(extra or {}),
        "sub": subject,
        "iss": settings.issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(
        payload, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm
    )
    return IssuedToken(token=token, expires_at=expires.replace(microsecond=0))


def _decode(settings: AuthSettings, token: str, audience: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            audience=audience,
            issuer=settings.issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.PyJWTError:
        raise TokenError("invalid token") from None
    if not isinstance(claims.get("sub"), str):
        raise TokenError("invalid token")
    return claims


def issue_access_token(settings: AuthSettings, user_id: int) -> IssuedToken:
    return _issue(settings, str(user_id), ACCESS_AUDIENCE, settings.token_ttl_seconds)


def decode_access_token(settings: AuthSettings, token: str) -> int:
    subject: str = _decode(settings, token, ACCESS_AUDIENCE)["sub"]
    if not subject.isdigit():
        raise TokenError("invalid token")
    return int(subject)


def _decode_video_subject(settings: AuthSettings, token: str, audience: str) -> int:
    subject = str(_decode(settings, token, audience)["sub"])
    prefix, _, raw_id = subject.partition(":")
    if prefix != "video" or not raw_id.isdigit():
        raise TokenError("invalid token")
    return int(raw_id)


@dataclass(frozen=True)
class PlaybackGrant:
    video_id: int
    # Issued to the video's owner: the only kind that plays a private video.
    owner: bool


def issue_playback_token(
    settings: AuthSettings, video_id: int, ttl: int, *, owner: bool = False
) -> IssuedToken:
    extra = {"own": True} if owner else None
    return _issue(settings, f"video:{video_id}", PLAYBACK_AUDIENCE, ttl, extra)


def decode_playback_grant(settings: AuthSettings, token: str) -> PlaybackGrant:
    video_id = _decode_video_subject(settings, token, PLAYBACK_AUDIENCE)
    claims = _decode(settings, token, PLAYBACK_AUDIENCE)
    return PlaybackGrant(video_id=video_id, owner=claims.get("own") is True)


def decode_playback_token(settings: AuthSettings, token: str) -> int:
    """The id of the video the token grants playback of."""
    return decode_playback_grant(settings, token).video_id


def issue_events_token(
    settings: AuthSettings, video_id: int, *, owner: bool = False
) -> IssuedToken:
    extra = {"own": True} if owner else None
    ttl = settings.events_token_ttl_seconds
    return _issue(settings, f"video:{video_id}", EVENTS_AUDIENCE, ttl, extra)


def decode_events_grant(settings: AuthSettings, token: str) -> PlaybackGrant:
    """The video whose progress stream the token may read, and whether it was the owner's
    (the stream's final event then carries the owner's playback URLs)."""
    video_id = _decode_video_subject(settings, token, EVENTS_AUDIENCE)
    claims = _decode(settings, token, EVENTS_AUDIENCE)
    return PlaybackGrant(video_id=video_id, owner=claims.get("own") is True)


def decode_events_token(settings: AuthSettings, token: str) -> int:
    """The id of the video whose progress stream the token may read."""
    return decode_events_grant(settings, token).video_id
