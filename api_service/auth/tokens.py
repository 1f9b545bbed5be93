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


def _issue(settings: AuthSettings, subject: str, audience: str, ttl: int) -> IssuedToken:
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl)
    payload = {
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


def _decode(settings: AuthSettings, token: str, audience: str) -> str:
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
    subject = claims["sub"]
    if not isinstance(subject, str):
        raise TokenError("invalid token")
    return subject


def issue_access_token(settings: AuthSettings, user_id: int) -> IssuedToken:
    return _issue(settings, str(user_id), ACCESS_AUDIENCE, settings.token_ttl_seconds)


def decode_access_token(settings: AuthSettings, token: str) -> int:
    subject = _decode(settings, token, ACCESS_AUDIENCE)
    if not subject.isdigit():
        raise TokenError("invalid token")
    return int(subject)


def _decode_video_subject(settings: AuthSettings, token: str, audience: str) -> int:
    subject = _decode(settings, token, audience)
    prefix, _, raw_id = subject.partition(":")
    if prefix != "video" or not raw_id.isdigit():
        raise TokenError("invalid token")
    return int(raw_id)


def issue_playback_token(settings: AuthSettings, video_id: int, ttl: int) -> IssuedToken:
    return _issue(settings, f"video:{video_id}", PLAYBACK_AUDIENCE, ttl)


def decode_playback_token(settings: AuthSettings, token: str) -> int:
    """The id of the video the token grants playback of."""
    return _decode_video_subject(settings, token, PLAYBACK_AUDIENCE)


def issue_events_token(settings: AuthSettings, video_id: int) -> IssuedToken:
    return _issue(settings, f"video:{video_id}", EVENTS_AUDIENCE, settings.events_token_ttl_seconds)


def decode_events_token(settings: AuthSettings, token: str) -> int:
    """The id of the video whose progress stream the token may read."""
    return _decode_video_subject(settings, token, EVENTS_AUDIENCE)
