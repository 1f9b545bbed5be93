"""The one table at the end and results.json with the raw numbers."""

from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    measurement: str
    value: str
    target: str
    verdict: str  # PASS, FAIL or INFO


def verdict(ok: bool | None) -> str:
    return "INFO" if ok is None else ("PASS" if ok else "FAIL")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def system_info(ffmpeg_version: str) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),  # uname -m
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "ffmpeg": ffmpeg_version,
    }


def table(rows: list[Row]) -> str:
    header = Row("measurement", "value", "target", "verdict")
    widths = [
        max(len(getattr(r, f)) for r in [header, *rows])
        for f in ("measurement", "value", "target", "verdict")
    ]

    def line(r: Row) -> str:
        cells = (r.measurement, r.value, r.target, r.verdict)
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def write_json(path: Path, system: dict[str, Any], raw: dict[str, Any], rows: list[Row]) -> None:
    document = {
        **system,
        "raw": raw,
        "table": [r.__dict__ for r in rows],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
