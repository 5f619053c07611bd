"""Free loopback ports for the processes the simulator starts (HAProxy, Prometheus)."""

from __future__ import annotations

import contextlib
import socket

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now (each bound to port 0 and let go); another process can
    still take one before ours binds it, so starters retry on a bind failure."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for each in sockets:
            each.bind((HOST, 0))
        return [each.getsockname()[1] for each in sockets]
