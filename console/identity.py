"""Who is acting: the user, the host the console runs on, and the SSH client it came from."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    host: str
    origin: str | None  # the SSH client's address, None for a local session

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"


def current_identity() -> Identity:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        user = f"uid:{os.getuid()}"
    # SSH_CLIENT is "ADDRESS CLIENT_PORT SERVER_PORT"
    origin = (os.environ.get("SSH_CLIENT") or "").split()
    return Identity(user=user, host=socket.gethostname(), origin=origin[0] if origin else None)
