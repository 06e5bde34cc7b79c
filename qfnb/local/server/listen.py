"""Listening sockets bound once and handed to the server: the port is never released between
picking it and serving on it, so no other process can take it in between."""

from __future__ import annotations

import errno
import logging
import socket

log = logging.getLogger("qfnb.local.server")


def bind(host: str, port: int = 0) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port`` 0: the kernel picks a free one), ready to serve."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind_preferring(host: str, port: int) -> socket.socket:
    """:func:`bind` to ``port`` if it is free, else to a port the kernel picks (logged)."""
    try:
        return bind(host, port)
    except OSError as exc:
        if port == 0 or exc.errno != errno.EADDRINUSE:
            raise
        log.warning("port %d is taken; listening on a free one instead", port)
        return bind(host, 0)


def bound_port(sock: socket.socket) -> int:
    """The port ``sock`` is bound to."""
    return int(sock.getsockname()[1])


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
