"""One error format for every 4xx/5xx: ``{"error": {"code", "message"}}``.

The middleware turns aiohttp's own HTTP exceptions (unknown route, wrong method, body too
large), our ``ApiError``, pydantic validation errors and unavailable dependencies into that
shape. Anything unexpected becomes a generic 500; the trace goes to the log only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from api_service.unavailable import unavailable_dependency

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems of a validation error."
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error the client should see, with its HTTP status and a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details


class ServiceUnavailable(ApiError):
    def __init__(self, what: str) -> None:
        super().__init__(
            503,
            "service_unavailable",
            f"{what} is unavailable, please retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> web.Response:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return web.json_response(
        body.model_dump(mode="json", exclude_none=True), status=status, headers=headers
    )


def describe_validation_error(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        details.append({"field": field, "message": item["msg"]})
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return f"invalid {first['field']}: {first['message']}", details


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return error_response(
            exc.status, exc.code, exc.message, headers=exc.headers, details=exc.details
        )
    except ValidationError as exc:
        message, details = describe_validation_error(exc)
        return error_response(400, "validation_error", message, details=details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        text = exc.text or ""
        # aiohttp's default bodies look like "404: Not Found"; keep only informative ones.
        message = exc.reason if not text or text.startswith(f"{exc.status}:") else text
        if exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 404:
            message = f"no route for {request.method} {request.path}"
        code = _STATUS_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, message, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        dependency = unavailable_dependency(exc)
        if dependency is not None:
            log.warning("dependency unavailable", dependency=dependency, error=repr(exc))
            unavailable = ServiceUnavailable(dependency)
            return error_response(
                503, unavailable.code, unavailable.message, headers=unavailable.headers
            )
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
