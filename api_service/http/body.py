"""Reading a request's JSON body into a pydantic model."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from api_service.http.errors import ApiError

RequestModel = TypeVar("RequestModel", bound=BaseModel)


async def read_json(request: web.Request, model: type[RequestModel]) -> RequestModel:
    """Parse and validate the JSON body; malformed JSON is a 400 of its own."""
    raw = await request.read()  # raises 413 past client_max_size
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
    except RecursionError:
        # json.loads recurses per nesting level; no request of ours is nested deeply.
        raise ApiError(400, "malformed_json", "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "request body must be a JSON object")
    return model.model_validate(data)
