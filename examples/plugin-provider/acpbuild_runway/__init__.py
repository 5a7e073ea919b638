"""Runway (runwayml.com) for acpbuild: Gen-4 Turbo video and Gen-4 Image, as an installable plugin.

acpbuild finds :class:`RunwayProvider` through the ``acpbuild.providers`` entry
point this package declares; recipes then write ``provider = "runway"``. The
adapter is :mod:`acpbuild_runway.adapter`, its catalogue
:mod:`acpbuild_runway.models`, its prices ``prices.toml``.
"""

from acpbuild_runway.adapter import RunwayProvider

__all__ = ["RunwayProvider"]
__version__ = "0.1.0"
