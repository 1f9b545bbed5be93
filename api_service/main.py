"""``video-api``: load settings, refuse unsafe production settings, serve."""

from __future__ import annotations

import sys

import structlog
from aiohttp import web

from api_service.app import create_app
from shared.logging import configure_logging
from shared.settings import SettingsError, load_settings


def main() -> None:
    try:
        settings = load_settings()
        settings.ensure_production_safe()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.logging.level, settings.logging.json_output)
    structlog.get_logger(__name__).info(
        "starting api", host=settings.server.host, port=settings.server.port
    )
    web.run_app(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout,
        # The request middleware writes the access line, with the request id bound.
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
