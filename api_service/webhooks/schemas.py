"""Bodies of the webhook routes."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from api_service.http.schemas import UtcDatetime


class CreateEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    url: str = Field(min_length=8, max_length=2048, description="http(s) URL of the receiver")


class EndpointResponse(BaseModel):
    # Built from the WebhookEndpoint row: EndpointResponse.model_validate(row).
    model_config = ConfigDict(from_attributes=True)

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
    # Built from the WebhookDelivery row: DeliveryResponse.model_validate(row).
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str = Field(description="The webhook-id header (the same on every attempt).")
    event_type: str
    video_id: int | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: UtcDatetime | None = Field(
        description="When the next attempt is due; null unless the delivery is pending."
    )
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None

    @model_validator(mode="after")
    def _next_attempt_only_while_pending(self) -> Self:
        # The row keeps the lease of its last attempt; once delivered or failed it means nothing.
        if self.status != "pending":
            self.next_attempt_at = None
        return self


class DeliveryList(RootModel[list[DeliveryResponse]]):
    pass
