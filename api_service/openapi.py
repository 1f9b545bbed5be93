"""The OpenAPI 3.1 document, built by walking the router: each route's method and path come
from its registration, the rest from the ``@operation`` metadata on its handler
(``api_service.http.operations``) and the same pydantic models that validate requests.
Also a Swagger UI page served from the installed swagger-ui-bundle (no CDN)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from swagger_ui_bundle import swagger_ui_path

from api_service.context import OPENAPI
from api_service.http.errors import ErrorResponse
from api_service.http.operations import Auth, Operation, operation_of
from shared.settings import S3_MAX_PARTS

DOCS_PATH = "/api/v1/docs"
OPENAPI_PATH = "/api/v1/openapi.json"
_REF = "#/components/schemas/{model}"

_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or a validation error naming the field",
    401: "Missing, invalid or expired token",
    404: "Not found (also another user's video)",
    409: "Conflict with the current state",
    413: "Request body or file too large, or the storage quota exceeded",
    429: "Rate limit or quota reached; retry after Retry-After seconds",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> str:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas.setdefault(model.__name__, schema)
        return _REF.format(model=model.__name__)


# Path parameters by name, in the order they are listed: (schema, description or None).
_PATH_PARAMETERS: dict[str, tuple[dict[str, Any], str | None]] = {
    "video_id": ({"type": "integer", "minimum": 1}, None),
    "quality": ({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,16}$"}, "Rendition, e.g. 720p"),
    "upload_id": ({"type": "string"}, "uploadId from create"),
    "endpoint_id": ({"type": "integer", "minimum": 1}, None),
    "part_number": ({"type": "integer", "minimum": 1, "maximum": S3_MAX_PARTS}, None),
}
# The video-scoped tokens travel in the query string (players and EventSource cannot send
# an Authorization header).
_QUERY_TOKENS: dict[Auth, str] = {
    "playback": "Playback token from playback_url",
    "events": "Events token from the video's events_url",
}


def _parameter(
    name: str, where: Literal["path", "query"], schema: dict[str, Any], description: str | None
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": True, "schema": schema}
    if description is not None:
        param["description"] = description
    return param


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    params = [
        _parameter(name, "path", schema, description)
        for name, (schema, description) in _PATH_PARAMETERS.items()
        if "{" + name + "}" in path
    ]
    if op.auth in _QUERY_TOKENS:
        params.append(_parameter("token", "query", {"type": "string"}, _QUERY_TOKENS[op.auth]))
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _documented(router: web.UrlDispatcher) -> Iterator[tuple[str, str, Operation]]:
    """(method, path, metadata) of every route registered with ``@operation``; aiohttp's
    implicit HEAD routes and undocumented routes (this document, the docs page) are left out."""
    for route in router.routes():
        op = operation_of(route.handler)
        if op is None or route.method == "HEAD" or route.resource is None:
            continue
        # canonical drops the regexes: /api/v1/videos/{video_id:\d+} -> /api/v1/videos/{video_id}
        yield route.method.lower(), route.resource.canonical, op


def build_openapi(router: web.UrlDispatcher, base_url: str) -> dict[str, Any]:
    components = _Components()
    error_ref = components.ref(ErrorResponse, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in _documented(router):
        success: dict[str, Any] = {"description": "Success"}
        if op.response is not None:
            success["content"] = {
                op.content_type: {"schema": {"$ref": components.ref(op.response, "serialization")}}
            }
        elif op.status != 204:
            success["content"] = {op.content_type: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(op.status): success}
        errors = op.error_statuses
        if path.startswith("/api"):
            errors |= {503}
        for status in sorted(errors):
            responses[str(status)] = {
                "description": _ERROR_DESCRIPTIONS.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": error_ref}}},
            }
        responses["default"] = {
            "description": "Any other error, in the same format",
            "content": {"application/json": {"schema": {"$ref": error_ref}}},
        }
        operation: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": f"{method}_{path.strip('/').replace('/', '_')}".replace("{", "")
            .replace("}", "")
            .replace(".", "_"),
            "responses": responses,
        }
        params = _parameters(path, op)
        if params:
            operation["parameters"] = params
        if op.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": components.ref(op.request, "validation")}
                    }
                },
            }
        if op.auth == "bearer":
            operation["security"] = [{"bearerAuth": []}]
        elif op.auth == "optional":
            operation["security"] = [{"bearerAuth": []}, {}]
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Video platform API",
            "version": "1.0.0",
            "description": "Direct-to-S3 uploads, covers and adaptive HLS. Errors are "
            '`{"error": {"code", "message"}}`.',
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


_DOCS_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Video platform API</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui"}});
  </script>
</body>
</html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


async def docs_page(request: web.Request) -> web.Response:
    html = _DOCS_HTML.format(static=f"{DOCS_PATH}/static", spec=OPENAPI_PATH)
    return web.Response(text=html, content_type="text/html")


def setup_openapi(app: web.Application, base_url: str) -> None:
    """Build the document from the routes registered so far, then serve it and the docs."""
    app[OPENAPI] = build_openapi(app.router, base_url)
    app.router.add_get(OPENAPI_PATH, openapi_json)
    app.router.add_get(DOCS_PATH, docs_page)
    app.router.add_static(f"{DOCS_PATH}/static", str(swagger_ui_path))
