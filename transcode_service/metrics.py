"""Prometheus metrics of one worker process, in its own registry (no global state, so tests
can run several workers in one interpreter)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
SPEED_BUCKETS = (0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "video_worker_jobs_total",
            "Jobs handled, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "video_worker_job_duration_seconds",
            "Wall-clock time of a job, by kind and outcome.",
            ["kind", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.stage_duration = Histogram(
            "video_worker_stage_duration_seconds",
            "Time spent per stage (download, probe, ffmpeg, upload).",
            ["kind", "stage"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.ffmpeg_speed = Histogram(
            "video_worker_ffmpeg_speed_ratio",
            "Media seconds processed per wall-clock second by ffmpeg.",
            ["kind"],
            buckets=SPEED_BUCKETS,
            registry=self.registry,
        )
        self.ffmpeg_runs = Counter(
            "video_worker_ffmpeg_ladder_runs_total",
            "ffmpeg ladder processes started.",
            ["kind"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "video_worker_jobs_in_flight",
            "Jobs being processed now.",
            ["kind"],
            registry=self.registry,
        )
        self.retries = Counter(
            "video_worker_retries_total",
            "Jobs sent back for a retry after a transient failure.",
            ["kind"],
            registry=self.registry,
        )
