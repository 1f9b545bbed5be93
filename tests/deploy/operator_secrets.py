"""What an operator supplies in place of the example secrets the deploy files ship.

Start-up refuses placeholder, published and short secrets outside development
(``Settings.ensure_production_safe``), so the manifests' own values must be refused and a
generated set must be accepted."""

from __future__ import annotations

import secrets

from yarl import URL


def operator_values(env: dict[str, str]) -> dict[str, str]:
    """``env`` with every secret the manifests ship replaced by a freshly generated one."""
    replaced = dict(env)
    if "VIDEO_AUTH__JWT_SECRET" in env:
        replaced["VIDEO_AUTH__JWT_SECRET"] = secrets.token_hex(32)
    for key in ("VIDEO_S3__ACCESS_KEY", "VIDEO_S3__SECRET_KEY"):
        if key in env:
            replaced[key] = secrets.token_hex(16)
    if "VIDEO_RABBITMQ__URL" in env:
        url = URL(env["VIDEO_RABBITMQ__URL"])
        replaced["VIDEO_RABBITMQ__URL"] = str(url.with_password(secrets.token_hex(16)))
    return replaced
