"""Browser tests: Debian's Chromium driven by Playwright, against the platform as real
processes (the API and a worker, tests/platform_fixtures.py) and a second web server on
another origin.

Playwright's own browser download is not used: ``make web`` installs the ``chromium`` apt
package (scripts/browser-deps.sh) and hls.js (npm). A failing test leaves a screenshot of its
page in tests/.artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from harness.net import free_port

# The platform the e2e tests use, started again for this package (package-scoped fixtures).
from tests.platform_fixtures import Platform, client, platform

__all__ = ["client", "platform"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Containers often have a 64 MB /dev/shm, too small for Chromium's shared memory.
    "--disable-dev-shm-usage",
    # Headless Chromium may not start a video before a user gesture otherwise.
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
PAGES = Path(__file__).resolve().parent / "pages"
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield page
    reports = request.node.stash.get(REPORTS, {})
    if any(report.failed for report in reports.values()):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console) + "\n")
    await context.close()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def other_origin(platform: Platform) -> AsyncIterator[str]:
    """A web site on another origin (another port) that knows nothing of the API but the
    URLs it is given; it loads hls.js from the API like any third-party page would."""
    app = web.Application()

    async def serve(request: web.Request) -> web.StreamResponse:
        html = (PAGES / request.match_info["name"]).read_text()
        return web.Response(text=html.replace("{{API}}", platform.api), content_type="text/html")

    app.router.add_get("/{name:[a-z_]+\\.html}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
