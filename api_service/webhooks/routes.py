"""Webhook endpoints of the caller: register (the secret is shown once), list, delete, and
the delivery attempts of one endpoint."""

from __future__ import annotations

import base64
import secrets

from aiohttp import web
from sqlalchemy import delete, func, select

from api_service.context import SESSIONS, SETTINGS
from api_service.db.models import WebhookDelivery, WebhookEndpoint
from api_service.http.errors import ApiError, not_found
from api_service.http.operations import operation
from api_service.webhooks.addresses import ReceiverRefused, check_receiver
from api_service.webhooks.schemas import (
    CreatedEndpointResponse,
    CreateEndpointRequest,
    DeliveryList,
    DeliveryResponse,
    EndpointList,
    EndpointResponse,
)

routes = web.RouteTableDef()
BASE = "/api/v1/webhooks"
_DELIVERIES_SHOWN = 100


def _endpoint_id(request: web.Request) -> int:
    raw = request.match_info["endpoint_id"]
    if not raw.isdigit() or len(raw) > 19 or int(raw) <= 0:
        raise not_found("webhook")
    return int(raw)


@routes.post(BASE)
@operation(
    "Register a webhook endpoint (the signing secret is returned once)",
    "webhooks",
    status=201,
    response=CreatedEndpointResponse,
    errors=(409,),
)
async def create_endpoint(
    request: web.Request, user_id: int, body: CreateEndpointRequest
) -> web.Response:
    settings = request.app[SETTINGS].webhooks
    try:
        await check_receiver(body.url, allow_private=settings.allow_private)
    except ReceiverRefused as exc:
        raise ApiError(400, "receiver_refused", f"invalid url: {exc}") from None
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    async with request.app[SESSIONS]() as session, session.begin():
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.owner_id == user_id)
        )
        if (count or 0) >= settings.max_endpoints_per_user:
            raise ApiError(
                409, "too_many_webhooks", f"at most {settings.max_endpoints_per_user} endpoints"
            )
        endpoint = WebhookEndpoint(owner_id=user_id, url=body.url, secret=secret)
        session.add(endpoint)
        await session.flush()
    response = CreatedEndpointResponse.model_validate(endpoint)
    return web.json_response(response.model_dump(mode="json"), status=201)


@routes.get(BASE)
@operation("The caller's webhook endpoints", "webhooks", response=EndpointList)
async def list_endpoints(request: web.Request, user_id: int) -> web.Response:
    async with request.app[SESSIONS]() as session:
        rows = await session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.owner_id == user_id)
            .order_by(WebhookEndpoint.id)
        )
        body = EndpointList([EndpointResponse.model_validate(e) for e in rows])
    return web.json_response(body.model_dump(mode="json"))


async def _owned(request: web.Request, user_id: int) -> int:
    endpoint_id = _endpoint_id(request)
    async with request.app[SESSIONS]() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.owner_id != user_id:
        raise not_found("webhook")
    return endpoint_id


@routes.delete(BASE + "/{endpoint_id}")
@operation("Delete a webhook endpoint and its deliveries", "webhooks", status=204, errors=(404,))
async def delete_endpoint(request: web.Request, user_id: int) -> web.Response:
    endpoint_id = await _owned(request, user_id)
    async with request.app[SESSIONS]() as session, session.begin():
        await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    return web.Response(status=204)


@routes.get(BASE + "/{endpoint_id}/deliveries")
@operation(
    "Delivery attempts of an endpoint, newest first (last 100)",
    "webhooks",
    response=DeliveryList,
    errors=(404,),
)
async def list_deliveries(request: web.Request, user_id: int) -> web.Response:
    endpoint_id = await _owned(request, user_id)
    async with request.app[SESSIONS]() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(_DELIVERIES_SHOWN)
        )
        body = DeliveryList([DeliveryResponse.model_validate(d) for d in rows])
    return web.json_response(body.model_dump(mode="json"))
