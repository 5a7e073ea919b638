"""Which processes of this machine still run: how a store tells a dead run's leftovers from a live one's.

The functions live in :mod:`acpbuild.process`, below every layer that starts
children or writes temporary files; this module keeps the store's name for them.
"""

from __future__ import annotations

from acpbuild.process import HOST, dead_leftover, pid_alive

__all__ = ["HOST", "dead_leftover", "pid_alive"]
