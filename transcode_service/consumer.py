"""The aio-pika adapter: decode a delivery, run its handler under the kind's semaphore and
lease, publish the outcome, then settle the delivery.

Settling rules:
- malformed body → ``reject(requeue=False)``: the broker dead-letters it at once;
- success → result event confirmed → result marker → ack;
- ``PermanentError`` → failed event (permanent) → ack, no retry;
- anything else (``RetryableError``, S3/network errors, bugs) → a copy with ``x-attempt + 1``
  into the retry delay queue, then ack; after ``max_attempts`` a failed event and a copy in
  the dead-letter queue (``x-failure-reason``), then ack;
- cancelled (shutdown) → no ack: closing the channel returns the delivery to the queue;
- running elsewhere (lease held) or no free slot → a copy into a delay queue without
  counting an attempt (``x-lease-waits + 1``), then ack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from shared.inflight import InFlight
from shared.messages import (
    FAILURE_REASON_MAX,
    AnyJob,
    CoverReady,
    JobKind,
    MessageError,
    TranscodeFailed,
    TranscodeProgress,
    TranscodeSucceeded,
    issued_job_id,
    parse_job,
    queue_kind,
)
from shared.topology import (
    FAILURE_REASON_HEADER_MAX,
    HEADER_ATTEMPT,
    HEADER_FAILURE_REASON,
)
from transcode_service.errors import PermanentError
from transcode_service.handlers import Deps, Handler, JobTimings, PercentCallback
from transcode_service.markers import ResultMarkers
from transcode_service.metrics import Metrics

log = structlog.get_logger(__name__)

HEADER_LEASE_WAITS = "x-lease-waits"
# Seconds a delivery waits for a free slot before it is sent round a delay queue: enough
# for a finished job to release its lease (a round trip), far below any consumer_timeout
# (a delivery held unacked past it is taken back by the broker).
SLOT_WAIT = 0.5

Result = CoverReady | TranscodeSucceeded | TranscodeProgress


@dataclass
class _Run:
    """What one run of a job reports when it ends (metrics and the summary log line)."""

    attempt: int
    outcome: str = "unknown"
    reason: str | None = None
    timings: JobTimings = field(default_factory=JobTimings)
    started: float = field(default_factory=time.monotonic)


def _record(metrics: Metrics, kind: JobKind, run: _Run) -> None:
    total = time.monotonic() - run.started
    metrics.jobs.labels(kind=kind, outcome=run.outcome).inc()
    metrics.job_duration.labels(kind=kind, outcome=run.outcome).observe(total)
    for stage, seconds in run.timings.stages.items():
        metrics.stage_duration.labels(kind=kind, stage=stage).observe(seconds)
    log.info(
        "job finished",
        outcome=run.outcome,
        attempt=run.attempt,
        reason=run.reason,
        total=round(total, 3),
        timings=run.timings.stages,
        speed=run.timings.speed,
        source_size=run.timings.source_size,
    )


def _header_int(message: AbstractIncomingMessage, name: str, default: int) -> int:
    value = (message.headers or {}).get(name, default)
    try:
        return max(default, int(str(value)))
    except (TypeError, ValueError):
        return default


class JobConsumer:
    """One queue, one channel, one semaphore (= the channel's prefetch)."""

    def __init__(
        self,
        *,
        kind: JobKind,
        queue: AbstractQueue,
        handler: Handler,
        concurrency: int,
        deps: Deps,
    ) -> None:
        """``deps`` is the process's one set of dependencies, shared by every queue: passed
        to the handler, and where the consumer takes its own settings, metrics, publisher,
        leases and result markers (in the handlers' bucket) from."""
        publisher, leases = deps.publisher, deps.leases
        if publisher is None or leases is None:
            # Optional for the handlers alone (tests without a broker), not for settling.
            raise ValueError("a consumer needs deps with a publisher and leases")
        self.kind = kind
        self._queue = queue
        self._handler = handler
        self._semaphore = asyncio.Semaphore(concurrency)
        self._deps = deps
        self._publisher = publisher
        self._leases = leases
        self._markers = ResultMarkers(deps.s3, deps.bucket)
        self._metrics = deps.metrics
        self._settings = deps.settings
        self._in_flight = InFlight()
        self._consumer_tag: str | None = None

    @property
    def consuming(self) -> bool:
        return self._consumer_tag is not None

    async def start(self) -> None:
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)

    async def stop(self) -> None:
        """No new deliveries; deliveries already prefetched but not started stay unacked and
        go back to the queue when the channel closes."""
        if self._consumer_tag is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            try:
                await self._queue.cancel(tag)
            except Exception:
                log.warning("cancelling the consumer failed", kind=self.kind, exc_info=True)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running jobs, then cancel the rest (ffmpeg is
        stopped, work directories removed, their deliveries left unacked)."""
        if self._in_flight:
            log.info("waiting for running jobs", kind=self.kind, jobs=len(self._in_flight))
        interrupted = await self._in_flight.drain(grace)
        if interrupted:
            log.warning("jobs interrupted by shutdown", kind=self.kind, jobs=interrupted)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Own task per delivery, so shutdown can wait for and cancel each one.
        self._in_flight.spawn(self.process(message))

    async def process(self, message: AbstractIncomingMessage) -> None:
        try:
            job = parse_job(message.body)
            if queue_kind(job) != self.kind:
                raise MessageError(f"a {job.kind} job on the {self.kind} queue")
        except MessageError as exc:
            log.warning(
                "malformed message dead-lettered",
                kind=self.kind,
                reason=str(exc),
                message_id=message.message_id,
            )
            self._metrics.jobs.labels(kind=self.kind, outcome="malformed").inc()
            await self._settle(message.reject(requeue=False))
            return
        with structlog.contextvars.bound_contextvars(
            video_id=job.video_id, job_id=str(job.job_id), kind=job.kind
        ):
            await self._process_job(message, job)

    async def _process_job(self, message: AbstractIncomingMessage, job: AnyJob) -> None:
        job_id = str(job.job_id)
        try:
            # A slot normally frees within moments: the broker sends the next delivery as
            # soon as the previous one is acked, while that job still releases its lease.
            await asyncio.wait_for(self._semaphore.acquire(), SLOT_WAIT)
        except TimeoutError:
            # With prefetch == concurrency a longer wait only happens after the broker
            # reopened the channel (consumer timeout) while earlier jobs still run: do not
            # hold the delivery unacked.
            await self._defer(message, job, "no free slot")
            return
        try:
            try:
                acquired = await self._leases.acquire(job.kind, job_id)
            except Exception as exc:
                log.warning("lease check failed", error=str(exc))
                await self._settle(message.nack(requeue=True))
                return
            if not acquired:
                await self._defer(message, job, "running on another worker")
                return
            try:
                await self._run_leased(message, job)
            finally:
                await asyncio.shield(self._leases.release(job.kind, job_id))
        finally:
            self._semaphore.release()

    async def _run_leased(self, message: AbstractIncomingMessage, job: AnyJob) -> None:
        run = _Run(attempt=_header_int(message, HEADER_ATTEMPT, 1))
        self._metrics.in_flight.labels(kind=self.kind).inc()
        try:
            run.outcome = await self._execute(message, job, run)
        except asyncio.CancelledError:
            run.outcome = "interrupted"
            raise
        except Exception as exc:
            # Publishing or settling failed (broker or S3 trouble): give the delivery back.
            run.outcome, run.reason = "error", str(exc) or type(exc).__name__
            log.error("could not complete the job; returning it to the queue", exc_info=True)
            await self._settle(message.nack(requeue=True))
        finally:
            self._metrics.in_flight.labels(kind=self.kind).dec()
            _record(self._metrics, self.kind, run)

    async def _execute(self, message: AbstractIncomingMessage, job: AnyJob, run: _Run) -> str:
        """Run the handler and settle the delivery; returns the outcome."""
        try:
            if await self._markers.get(job.video_id, str(job.job_id)) is not None:
                # Finished and its event confirmed earlier; this is a redelivered copy.
                await self._settle(message.ack())
                return "duplicate"
            result = await self._handler(job, self._deps, self._progress_callback(job), run.timings)
        except Exception as exc:  # not CancelledError: a shutdown is not a failure of the job
            run.reason = str(exc) or type(exc).__name__
            return await self._on_failure(message, job, run.attempt, exc)
        # The work is done: a shutdown arriving now must not throw it away, and these
        # steps take milliseconds, so they run to the end even if we are cancelled.
        await asyncio.shield(self._complete(message, job, result))
        return "succeeded"

    async def _on_failure(
        self, message: AbstractIncomingMessage, job: AnyJob, attempt: int, exc: Exception
    ) -> str:
        """The retry decision: a ``PermanentError`` fails the video at once; anything else
        is retried until ``max_attempts``, then dead-lettered."""
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, PermanentError):
            await self._publisher.publish_event(self._failed(job, reason, permanent=True))
            await self._settle(message.ack())
            return "failed"
        log.warning("job failed, transient", attempt=attempt, error=reason, exc_info=exc)
        return await self._retry_or_give_up(message, job, attempt, reason)

    async def _complete(
        self, message: AbstractIncomingMessage, job: AnyJob, result: Result
    ) -> None:
        await self._publisher.publish_event(result)
        await self._markers.put(job.video_id, str(job.job_id), result.model_dump(mode="json"))
        await self._settle(message.ack())

    async def _retry_or_give_up(
        self, message: AbstractIncomingMessage, job: AnyJob, attempt: int, reason: str
    ) -> str:
        if attempt < self._settings.max_attempts:
            queue = await self._publisher.delay(
                message.body,
                queue_kind(job),
                attempt - 1,
                {HEADER_ATTEMPT: attempt + 1, HEADER_LEASE_WAITS: 0},
            )
            self._metrics.retries.labels(kind=self.kind).inc()
            await self._settle(message.ack())
            log.info("job scheduled for retry", attempt=attempt + 1, delay_queue=queue)
            return "retried"
        final = f"gave up after {attempt} attempts: {reason}"
        await self._publisher.publish_event(self._failed(job, final, permanent=False))
        await self._publisher.dead_letter(
            message.body,
            job.kind,
            {HEADER_ATTEMPT: attempt, HEADER_FAILURE_REASON: final[:FAILURE_REASON_HEADER_MAX]},
        )
        await self._settle(message.ack())
        return "dead_lettered"

    async def _defer(self, message: AbstractIncomingMessage, job: AnyJob, why: str) -> None:
        """Send a copy round a delay queue without counting an attempt."""
        waits = _header_int(message, HEADER_LEASE_WAITS, 0)
        try:
            queue = await self._publisher.delay(
                message.body,
                queue_kind(job),
                waits,
                {
                    HEADER_ATTEMPT: _header_int(message, HEADER_ATTEMPT, 1),
                    HEADER_LEASE_WAITS: waits + 1,
                },
            )
        except Exception:
            log.warning("deferring failed; returning the job to the queue", exc_info=True)
            await self._settle(message.nack(requeue=True))
            return
        log.info("job deferred", why=why, delay_queue=queue, waits=waits + 1)
        self._metrics.jobs.labels(kind=self.kind, outcome="deferred").inc()
        await self._settle(message.ack())

    def _progress_callback(self, job: AnyJob) -> PercentCallback:
        interval = self._settings.progress_interval
        last = 0.0

        async def publish(percent: float) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < interval and percent < 100:
                return
            last = now
            event = TranscodeProgress(
                video_id=job.video_id, job_id=issued_job_id(job), percent=round(percent, 1)
            )
            try:
                await self._publisher.publish_event(event)
            except Exception as exc:
                log.warning("progress event not published", error=str(exc))

        return publish

    @staticmethod
    def _failed(job: AnyJob, reason: str, *, permanent: bool) -> TranscodeFailed:
        return TranscodeFailed(
            video_id=job.video_id,
            job_id=issued_job_id(job),
            job_kind=queue_kind(job),
            reason=reason[:FAILURE_REASON_MAX],
            permanent=permanent,
        )

    @staticmethod
    async def _settle(action: Awaitable[Any]) -> None:
        try:
            await action
        except Exception as exc:
            # Typically the broker closed the channel (consumer timeout, connection loss):
            # it redelivers the message itself, and the result marker or the lease stops
            # a second run.
            log.warning("could not settle the delivery", error=repr(exc))
