"""acpbuild's public API for provider adapters: what a package implements to add a service.

A provider is a catalogue of :class:`Model` entries, each with its :class:`Param`
table, and one method, :meth:`Provider.generate`, that turns a :class:`Job` into
exactly one output file and reports an :class:`Outcome`. A long job tells its
:class:`Journal` the provider's request id before it waits, so a run killed
while polling resumes that job instead of paying again. Prices come in a TOML
table in the registry's format (:mod:`acpbuild.provider.prices`).

Everything here is stable within a major :data:`API_VERSION`: a plugin declares
the version it was written for in ``Provider.api_version``, and acpbuild loads
it when the majors match and the plugin's minor is not newer than acpbuild's.

The submodules are part of the API too:

- :mod:`acpbuild.provider.wire`: retries that know what may be billed, where a
  key may be sent, capped downloads that land atomically;
- :mod:`acpbuild.provider.outputs`: the decode checks every result passes;
- :mod:`acpbuild.provider.files`: temporary files that a stopped run sweeps;
- :mod:`acpbuild.provider.media`: the bundled ffmpeg, probing and decoding;
- :mod:`acpbuild.provider.prices`: the price units and the price table format.

The built-in adapters import nothing else of acpbuild, so a plugin can do what
they do. Tests for an adapter: :mod:`acpbuild.testing`.
"""

from __future__ import annotations

from acpbuild.config.secrets import redact
from acpbuild.errors import (
    AcpbuildError,
    AuthError,
    BadResponse,
    MissingCredentials,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
    closest,
    did_you_mean,
)
from acpbuild.provider.base import (
    API_VERSION,
    FILE_TYPES,
    Job,
    Journal,
    Model,
    Outcome,
    Param,
    ParamType,
    Problem,
    Provider,
    compatible,
)
from acpbuild.provider.prices import UNITS

__all__ = [
    "API_VERSION",
    "FILE_TYPES",
    "UNITS",
    "AcpbuildError",
    "AuthError",
    "BadResponse",
    "Job",
    "Journal",
    "MissingCredentials",
    "Model",
    "Outcome",
    "Param",
    "ParamType",
    "PaymentRequired",
    "Problem",
    "Provider",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RequestRejected",
    "ServiceUnavailable",
    "closest",
    "compatible",
    "did_you_mean",
    "redact",
]
