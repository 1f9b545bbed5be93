"""Fixtures of the end-to-end tests: the platform as real processes and a signed-up client
(defined in tests/platform_fixtures.py, shared with the browser tests)."""

from __future__ import annotations

from tests.platform_fixtures import client, platform

__all__ = ["client", "platform"]
