"""The port of `sora2 serve --workers N`: each HTTP process listens on a socket of its own.

uvicorn binds one socket and hands it to every worker, and an asyncio loop accepts up to
its backlog of connections each time the socket is ready: a burst of keep-alive
connections (a proxy's pool, a load test's 32) all lands on whichever process woke first,
which then does the work of all while the others idle. Here the socket uvicorn hands over
arrives in each worker as that worker's own socket on the same port (SO_REUSEPORT), so the
kernel spreads connections over the processes. The parent's socket only holds the port: it
never listens, so no connection waits on it.
"""

from __future__ import annotations

import socket
from typing import Any


def _bound(family: int, address: Any) -> socket.socket:
    sock = ReusePortSocket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class ReusePortSocket(socket.socket):
    """A bound socket that, passed to a spawned worker, is bound there anew on its port."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (_bound, (self.family, self.getsockname()))


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """The parent's socket: bound to (host, port), holding it for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _bound(family, (host, port))
