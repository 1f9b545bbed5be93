"""ffmpeg's resource limits against the real binary: a memory cap turns a runaway process
into a readable permanent failure, and the default cap leaves a normal ladder alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.settings import WorkerSettings
from tests.media import make_video
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import check_result, run_process
from transcode_service.ladder import build_ladder_args, plan_ladder
from transcode_service.probe import probe
from transcode_service.sandbox import sandbox_for


async def _run_ladder(source: Path, out: Path, settings: WorkerSettings) -> None:
    # Like a job: the source inside the work directory, the only one the sandbox shows.
    source = Path(shutil.copy(source, out / "source.mp4"))
    info = await probe(source, settings)
    rungs = plan_ladder(info, settings)
    for rung in rungs:
        (out / rung.dirname).mkdir(parents=True)
    result = await run_process(
        build_ladder_args(source, info, rungs, out, settings),
        time_limit=120,
        tool="ffmpeg-ladder",
        progress=True,
        sandbox=sandbox_for(settings, out),
    )
    check_result(result, "transcoding")


@pytest.fixture(scope="module")
def source_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(
        tmp_path_factory.mktemp("limits") / "in.mp4", width=1280, height=720, duration=1
    )


async def test_memory_cap_fails_the_ladder_with_a_readable_reason(
    source_720p: Path, tmp_path: Path
) -> None:
    settings = WorkerSettings(rungs=[720, 480, 360], ffmpeg_max_memory_mb=400)
    with pytest.raises(PermanentError, match="needs more memory than the worker allows"):
        await _run_ladder(source_720p, tmp_path, settings)


async def test_default_memory_cap_leaves_a_normal_ladder_alone(
    source_720p: Path, tmp_path: Path
) -> None:
    settings = WorkerSettings(rungs=[720, 480, 360])
    assert settings.ffmpeg_max_memory_mb == 8192
    await _run_ladder(source_720p, tmp_path, settings)
    assert (tmp_path / "hls_720p" / "720p.m3u8").is_file()
