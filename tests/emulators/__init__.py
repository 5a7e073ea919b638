"""Local HTTP servers that speak each provider's protocol, for the real SDKs to talk to.

The shared part is acpbuild's own test kit, :mod:`acpbuild.testing.loopback`
(a plugin's author uses the same); each provider's emulator here subclasses it
and adds its routes.
"""

from acpbuild.testing.loopback import Failure, Request, Response, real_mp4
from acpbuild.testing.loopback import LoopbackServer as Emulator
from acpbuild.testing.loopback import RecordingJournal as Journal

__all__ = ["Emulator", "Failure", "Journal", "Request", "Response", "real_mp4"]
