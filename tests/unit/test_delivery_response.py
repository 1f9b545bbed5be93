"""A webhook delivery as the API shows it: built from its database row, with the next
attempt's time only while one is due."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from api_service.webhooks.schemas import DeliveryResponse

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _row(status: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=7, message_id="msg_1", event_type="video.online", video_id=3, status=status,
        attempts=2, last_status=500, last_error="HTTP 500", next_attempt_at=NOW,
        created_at=NOW, delivered_at=NOW if status == "delivered" else None,
    )  # fmt: skip


def test_a_pending_delivery_shows_its_next_attempt() -> None:
    response = DeliveryResponse.model_validate(_row("pending"))
    assert response.next_attempt_at == NOW and response.attempts == 2


@pytest.mark.parametrize("status", ["delivered", "failed"])
def test_a_finished_delivery_has_no_next_attempt(status: str) -> None:
    response = DeliveryResponse.model_validate(_row(status))
    assert response.next_attempt_at is None and response.status == status
