"""Who is asking: the client address that wrong guesses are counted by.

An IPv6 client counts by its /64 (one machine is routinely given a whole /64, and could
otherwise change address for every guess); an IPv4-mapped IPv6 address as the IPv4 one.

A request that an inbox front passes on reaches the node process over the front's Unix
socket (see ``node.http.fronts``), where the peer has no address: the front names the
client in :data:`FRONT_CLIENT_HEADER`. The node process believes that header only on its
Unix socket, which only the node's own fronts can reach; a front replaces any copy a
client sent.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

from aiohttp import web

FRONT_CLIENT_HEADER = "X-Refnode-Client"


def client_address(request: web.BaseRequest) -> str:
    """The client's address as guesses are counted (see the module's text)."""
    if _over_unix_socket(request):
        return request.headers.get(FRONT_CLIENT_HEADER) or "unix"
    return grouped(request.remote or "unknown")


@functools.lru_cache(maxsize=1024)  # a few addresses, over and over: parsing one is dearer than the rest
def grouped(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _over_unix_socket(request: web.BaseRequest) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX
