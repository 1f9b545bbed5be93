"""Bodies of the webhook routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from api_service.http.schemas import UtcDatetime


class CreateEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    url: str = Field(min_length=8, max_length=2048, description="http(s) URL of the receiver")


class EndpointResponse(BaseModel):
    id: int
    url: str
    created_at: UtcDatetime


class CreatedEndpointResponse(EndpointResponse):
    secret: str = Field(
        description="Signing secret (whsec_…), shown once: verify deliveries with it."
    )


class EndpointList(RootModel[list[EndpointResponse]]):
    pass


class DeliveryResponse(BaseModel):
    id: int
    message_id: str = Field(description="The webhook-id header (the same on every attempt).")
    event_type: str
    video_id: int | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: UtcDatetime | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None


class DeliveryList(RootModel[list[DeliveryResponse]]):
    pass
