"""No SSRF through webhooks: a receiver must resolve only to public addresses unless the
deployment allows private ones (``webhooks.allow_private``)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from yarl import URL


class ReceiverRefused(Exception):
    pass


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_receiver(url: str, *, allow_private: bool) -> None:
    """Raise ReceiverRefused unless ``url`` is http(s) with a host resolving to public
    addresses only (checked at registration and again before every delivery)."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ReceiverRefused("the URL must be http:// or https:// with a host")
    if parsed.user or parsed.password:
        raise ReceiverRefused("the URL may not carry credentials")
    if allow_private:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(parsed.host, parsed.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise ReceiverRefused(f"the host {parsed.host} does not resolve") from None
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            raise ReceiverRefused(
                f"the host {parsed.host} resolves to {address}, which is not a public address"
            )
