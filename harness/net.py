"""Ports: a free one to bind, and waiting until a process listens on one."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from harness.polling import DEFAULT_WITHIN


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it; never 8000/8001)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_for_port(port: int, host: str = "127.0.0.1", within: float = DEFAULT_WITHIN) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await accepts_connections(port, host):
        if loop.time() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {within} s")
        await asyncio.sleep(0.1)
