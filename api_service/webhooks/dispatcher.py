"""Sends due webhook deliveries, signed with the Standard Webhooks scheme (the
``standardwebhooks`` package's signer).

Each pass claims due rows with ``SELECT … FOR UPDATE SKIP LOCKED`` and moves their next attempt
one lease ahead before sending, so several API replicas never send the same row at once, and a
process killed mid-delivery leaves the row to be sent again when the lease ends (at least once,
always with the same ``webhook-id``, which receivers use to drop duplicates). Failures back off
exponentially; after ``webhooks.max_attempts`` the delivery is ``failed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from api_service.background import background_task
from api_service.context import SESSIONS, SETTINGS
from api_service.db.models import WebhookDelivery, WebhookEndpoint, utcnow
from api_service.webhooks.addresses import ReceiverRefused, check_receiver
from shared.settings import WebhookSettings

log = structlog.get_logger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class _Claimed:
    id: int
    message_id: str
    payload: str
    attempts: int
    url: str
    secret: str


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status: int | None
    error: str | None


def signed_headers(secret: str, message_id: str, payload: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, payload),
        "content-type": "application/json",
    }


class WebhookDispatcher:
    def __init__(
        self, settings: WebhookSettings, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.timeout),
            headers={"user-agent": "video-platform-webhooks/1"},
        )

    async def close(self) -> None:
        await self.http.close()

    async def run(self) -> None:
        while True:
            try:
                sent = await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook pass failed")
                sent = 0
            if sent == 0:
                await asyncio.sleep(self.settings.poll_interval)

    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        # Longer than one send can take; a row whose sender died is due again after it.
        lease = timedelta(seconds=self.settings.timeout + 30)
        async with self.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(
                        WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now
                    )
                    .order_by(WebhookDelivery.id)
                    .limit(self.settings.batch_size)
                    .with_for_update(skip_locked=True, of=WebhookDelivery)
                )
            ).all()
            claimed = []
            for delivery, url, secret in rows:
                delivery.attempts += 1
                delivery.next_attempt_at = now + lease
                claimed.append(
                    _Claimed(
                        delivery.id,
                        delivery.message_id,
                        delivery.payload,
                        delivery.attempts,
                        url,
                        secret,
                    )
                )
        return claimed

    async def _send(self, item: _Claimed) -> _Outcome:
        try:
            await check_receiver(item.url, allow_private=self.settings.allow_private)
            async with self.http.post(
                item.url,
                data=item.payload.encode(),
                headers=signed_headers(item.secret, item.message_id, item.payload),
                allow_redirects=False,  # a redirect could point anywhere
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return _Outcome(True, resp.status, None)
                return _Outcome(False, resp.status, f"receiver answered HTTP {resp.status}")
        except ReceiverRefused as exc:
            return _Outcome(False, None, f"refused: {exc}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Outcome(False, None, f"{type(exc).__name__}: {exc}"[:1000])

    async def dispatch_once(self) -> int:
        claimed = await self._claim()
        if not claimed:
            return 0
        await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _deliver(self, item: _Claimed) -> None:
        # Each outcome is recorded as soon as its own send ends, not after the slowest one of
        # the batch: a receiver holding its request (up to webhooks.timeout) or a crash
        # meanwhile must not leave already acknowledged deliveries pending, to be sent again.
        outcome = await self._send(item)
        values: dict[str, object] = {"last_status": outcome.status, "last_error": outcome.error}
        now = utcnow()
        if outcome.ok:
            values.update(status=DELIVERED, delivered_at=now)
        elif item.attempts >= self.settings.max_attempts:
            values.update(status=FAILED)
        else:
            delay = min(
                self.settings.backoff_base * 2 ** (item.attempts - 1),
                self.settings.backoff_max,
            )
            values.update(next_attempt_at=now + timedelta(seconds=delay))
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == item.id).values(**values)
            )
        log.info("webhook attempt", delivery_id=item.id, attempt=item.attempts, **asdict(outcome))


async def webhook_dispatcher(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the dispatcher runs in every API process (the claims keep them apart)."""
    dispatcher = WebhookDispatcher(app[SETTINGS].webhooks, app[SESSIONS])
    try:
        async with background_task(dispatcher.run(), "webhooks"):
            yield
    finally:
        await dispatcher.close()
