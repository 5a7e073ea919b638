"""Which processes of this machine still run: how a store tells a dead run's leftovers from a live one's."""

from __future__ import annotations

import os
import socket

#: this machine, as claims and staging files name it
HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True
