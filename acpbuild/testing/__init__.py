"""acpbuild's test kit for provider adapters, built-in or from a plugin.

- :class:`LoopbackServer`: a local HTTP server to write an emulator of a
  service's API on, so the service's real SDK is tested on the wire;
- :class:`RecordingJournal`: the runner's journal, recording what an adapter commits;
- :class:`ProviderContract`: the contract suite every adapter passes; subclass it
  in a pytest module and say how to start your emulator and what to ask it.

Nothing in the library imports this package; it needs pytest, which the
contract suite is written for.
"""

from acpbuild.testing.contract import ProviderContract, Sample
from acpbuild.testing.loopback import (
    Failure,
    LoopbackServer,
    RecordingJournal,
    Request,
    Response,
    real_mp4,
)

__all__ = [
    "Failure",
    "LoopbackServer",
    "ProviderContract",
    "RecordingJournal",
    "Request",
    "Response",
    "Sample",
    "real_mp4",
]
