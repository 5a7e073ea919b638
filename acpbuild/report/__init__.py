"""``acpbuild report``: a static HTML gallery of a recipe's outputs, how each was made, and what it cost.

:func:`make_report` gathers (:mod:`~acpbuild.report.gather`), renders
(:mod:`~acpbuild.report.render`, with :mod:`~acpbuild.report.charts`) and
writes (:mod:`~acpbuild.report.write`). The page needs no server: open
``report/index.html`` from disk or from a CI artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from acpbuild.engine.workflow import RecipeSource
from acpbuild.report.data import Report
from acpbuild.report.gather import gather
from acpbuild.report.write import Written, write

__all__ = ["Report", "Written", "default_dir", "make_report"]

#: the report's folder name, beside the recipe, when none is given
DEFAULT_NAME = "report"


def default_dir(recipe_file: Path) -> Path:
    """Where a recipe's report goes by default: ``report/`` beside the recipe."""
    return recipe_file.parent / DEFAULT_NAME


def make_report(
    path: RecipeSource = None,
    out: str | Path | None = None,
    *,
    history: bool = False,
    result: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Written:
    """Write the report of the recipe at ``path`` (``acpbuild.toml`` by default) into ``out``
    (default: ``report/`` beside the recipe) and return what was written.

    ``result`` is a run's ``RunResult.to_dict()`` whose statuses to show (default:
    the recipe's last run); ``history`` adds each step's earlier generations.
    """
    report = gather(path, history=history, result=result, env=env)
    return write(report, Path(out) if out is not None else default_dir(report.recipe_file))
