"""Prometheus metrics on a per-app registry (several apps in one process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "outbox_pending",
            "Outbox rows not yet published to the broker.",
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "outbox_published",
            "Outbox rows published with a broker confirm.",
            registry=self.registry,
        )
        self.outbox_failures = Counter(
            "outbox_publish_failures",
            "Failed attempts to publish outbox rows.",
            registry=self.registry,
        )
        self.events_applied = Counter(
            "events_applied",
            "Worker events consumed, by type and outcome (applied, ignored, or unknown_job: "
            "not from a job issued for that video, dropped).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "dead_letters_seen",
            "Dead-lettered messages seen by the API, by kind.",
            ["kind"],
            registry=self.registry,
        )
