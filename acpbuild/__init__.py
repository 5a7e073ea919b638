"""acpbuild: a build tool for AI-generated media.

``acpbuild.run("promo.toml")`` builds a recipe like ``make`` builds code: only
changed steps run, independent steps run at once, and a ledger of every paid
generation means none is bought twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acpbuild.version import __version__

__all__ = [
    "AcpbuildError",
    "BudgetExceeded",
    "ProviderError",
    "Recipe",
    "RecipeError",
    "RunResult",
    "StoreError",
    "__version__",
    "load_recipe",
    "recipe_tasks",
    "run",
]

# Resolved on first use, so `acpbuild --version` imports none of doit, pydantic or the SDKs.
_LAZY = {
    "run": "acpbuild.engine.workflow",
    "RunResult": "acpbuild.engine.workflow",
    "recipe_tasks": "acpbuild.engine.doit_tasks",
    "load_recipe": "acpbuild.recipe",
    "Recipe": "acpbuild.recipe",
    "AcpbuildError": "acpbuild.errors",
    "BudgetExceeded": "acpbuild.errors",
    "ProviderError": "acpbuild.errors",
    "RecipeError": "acpbuild.errors",
    "StoreError": "acpbuild.errors",
}

if TYPE_CHECKING:
    from acpbuild.engine.doit_tasks import recipe_tasks
    from acpbuild.engine.workflow import RunResult, run
    from acpbuild.errors import (
        AcpbuildError,
        BudgetExceeded,
        ProviderError,
        RecipeError,
        StoreError,
    )
    from acpbuild.recipe import Recipe, load_recipe


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'acpbuild' has no attribute {name!r}")
