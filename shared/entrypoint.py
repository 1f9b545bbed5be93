"""Start-up shared by every console script: settings and logging, or one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from shared.logging import configure_logging
from shared.settings import Settings, SettingsError, load_settings

EXIT_BAD_SETTINGS = 2


def start(check: Callable[[Settings], None] | None = None) -> Settings:
    """Load the settings (defaults < YAML < environment), run ``check`` on them, configure
    logging once. A bad setting ends the process with one line naming the key, never a trace,
    so an operator sees at once what to fix."""
    try:
        settings = load_settings()
        if check is not None:
            check(settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    configure_logging(settings.logging.level, settings.logging.json_output)
    return settings
