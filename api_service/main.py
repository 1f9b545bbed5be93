"""``video-api``: load settings, refuse unsafe production settings, serve."""

from __future__ import annotations

import structlog
from aiohttp import web

from api_service.app import create_app
from shared.entrypoint import start
from shared.settings import Settings


def main() -> None:
    settings = start(check=Settings.ensure_production_safe)
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
