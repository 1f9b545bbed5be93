"""Entry point: one ``run()`` owning every resource through an ``AsyncExitStack``.

SIGTERM/SIGINT → stop consuming → running jobs get ``worker.shutdown_grace`` seconds → the
rest are cancelled (ffmpeg stopped, work directories removed, deliveries left unacked so the
broker hands them to another worker) → channels, S3 client, connection and health server
closed → exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustConnection

from shared.entrypoint import start
from shared.messages import JobKind
from shared.s3 import s3_client
from shared.settings import Settings
from shared.topology import Topology, declare_topology
from transcode_service.chunks import HANDLERS
from transcode_service.consumer import JobConsumer
from transcode_service.handlers import Deps
from transcode_service.health import create_app, health_server
from transcode_service.lease import LeaseManager
from transcode_service.metrics import Metrics
from transcode_service.publisher import Publisher
from transcode_service.sandbox import resolve_mode
from transcode_service.workdir import clean_stale

log = structlog.get_logger("transcode_service")


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
) -> int:
    """Run the worker until ``stop`` is set (by default: until SIGTERM or SIGINT).
    ``on_started`` receives the health server's port once consuming."""
    worker = settings.worker
    topology = Topology.from_settings(settings.rabbitmq)
    worker.work_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(worker.work_dir)

    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

    metrics = Metrics()
    consumers: list[JobConsumer] = []
    connection: AbstractRobustConnection | None = None

    def ready() -> bool:
        return (
            connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and bool(consumers)
            and all(c.consuming for c in consumers)
        )

    # Decided once, before any job: bwrap, or a minimal environment only (see sandbox.py).
    sandbox, why = await asyncio.to_thread(resolve_mode, worker.ffmpeg_sandbox)
    (log.info if sandbox == "bwrap" else log.warning)("ffmpeg sandbox", mode=sandbox, reason=why)

    async with AsyncExitStack() as stack:
        port = await stack.enter_async_context(
            health_server(
                create_app(metrics, ready, sandbox), worker.health_host, worker.health_port
            )
        )
        log.info("health server listening", host=worker.health_host, port=port)
        connection = await aio_pika.connect_robust(
            settings.rabbitmq.url.get_secret_value(),
            client_properties={
                "connection_name": f"transcode-worker {socket.gethostname()} pid {os.getpid()}"
            },
        )
        stack.push_async_callback(connection.close)
        s3 = await stack.enter_async_context(
            s3_client(settings.s3, max_pool_connections=max(32, worker.upload_concurrency * 2))
        )
        setup = await connection.channel()
        await declare_topology(setup, topology)
        await setup.close()

        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        stack.push_async_callback(publish_channel.close)
        publisher = Publisher(publish_channel, topology, settings.rabbitmq)
        await publisher.start()

        leases = LeaseManager(connection, settings.rabbitmq.prefix)
        deps = Deps(
            settings=worker,
            s3=s3,
            bucket=settings.s3.bucket,
            upload_semaphore=asyncio.Semaphore(worker.upload_concurrency),
            metrics=metrics,
            publisher=publisher,
            leases=leases,
        )
        concurrency_of: dict[JobKind, int] = {
            "cover": worker.cover_concurrency,
            "transcode": worker.transcode_concurrency,
        }
        selected = {topology.queue_of(queue) for queue in worker.queues}
        consuming: dict[str, int] = {}
        for kind, handler in HANDLERS.items():
            if topology.job_queue(kind) not in selected:
                continue  # another Deployment's queue (worker.queues)
            concurrency = concurrency_of[kind]
            # One channel per kind, prefetch = its semaphore: a cover never waits behind a
            # long transcode, and the broker spreads jobs fairly across worker processes.
            channel = await connection.channel(publisher_confirms=False)
            stack.push_async_callback(channel.close)
            await channel.set_qos(prefetch_count=concurrency)
            queue = await channel.get_queue(topology.job_queue(kind))
            consumers.append(
                JobConsumer(
                    kind=kind, queue=queue, handler=handler, concurrency=concurrency, deps=deps
                )
            )
            consuming[queue.name] = concurrency
        for consumer in consumers:
            await consumer.start()
        # The queues this process consumes, each with its concurrency (= prefetch).
        log.info(
            "worker started", queues=worker.queues, consuming=consuming, ffmpeg_sandbox=sandbox
        )
        if on_started is not None:
            on_started(port)

        await stop.wait()
        log.info("shutting down", grace=worker.shutdown_grace)
        for consumer in consumers:
            await consumer.stop()
        await asyncio.gather(*(c.drain(worker.shutdown_grace) for c in consumers))
        # Leaving the stack closes the consumer channels first: deliveries still unacked
        # go back to their queues.
    # Job directories are gone already (each job removes its own); drop the empty
    # per-process level too.
    with contextlib.suppress(OSError):
        (worker.work_dir / str(os.getpid())).rmdir()
    log.info("worker stopped")
    return 0


def main() -> None:
    settings = start(check=Settings.ensure_credentials_safe)
    try:
        code = asyncio.run(run(settings))
    except Exception:
        # e.g. the broker or S3 unreachable at start-up: one structured line, non-zero exit
        # (the orchestrator restarts the process).
        log.exception("worker failed")
        code = 1
    sys.exit(code)
