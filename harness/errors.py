"""One base for what the harness raises, so a tool (the bench, the demo) can print any of it
as one line instead of a traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """A step driving the platform from outside failed; the message says which and why."""
