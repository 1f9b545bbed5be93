"""A minimal Server-Sent Events reader over an aiohttp response, as the HTML spec parses the
stream (fields id/event/data, comment lines, blank line dispatches), for tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseStream:
    """Reads events; counts the comment lines (heartbeats) seen in between."""

    response: aiohttp.ClientResponse
    comments: int = 0
    _fields: dict[str, list[str]] = field(default_factory=dict)

    async def events(self) -> AsyncIterator[SseEvent]:
        async for raw in self.response.content:
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                fields, self._fields = self._fields, {}
                if "data" in fields:
                    yield SseEvent(
                        event=(fields.get("event") or ["message"])[-1],
                        data="\n".join(fields["data"]),
                        id=fields["id"][-1] if "id" in fields else None,
                    )
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            self._fields.setdefault(name, []).append(value.removeprefix(" "))

    async def next(self) -> SseEvent:
        async for event in self.events():
            return event
        raise AssertionError("the stream ended")
