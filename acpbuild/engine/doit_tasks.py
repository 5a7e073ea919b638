"""A recipe's steps as tasks inside another project's ``dodo.py``.

    # dodo.py
    from acpbuild import recipe_tasks

    def task_promo():
        yield from recipe_tasks("promo.toml")

``doit list`` then shows ``promo:cover``, ``promo:clip`` … beside the project's
own tasks, and ``doit promo`` builds the recipe with doit's own runner, keys,
store and ledger included.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any


def recipe_tasks(path: str | os.PathLike[str], basename: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield one doit sub-task per step of the recipe at ``path``.

    ``basename`` is the name of the ``task_*`` function yielding them (found by
    default from the caller), so dependencies between steps point at the full
    ``basename:step`` names doit gives sub-tasks.
    """
    from acpbuild.engine.context import Context
    from acpbuild.engine.tasks import task_dicts
    from acpbuild.engine.workflow import open_recipe

    if basename is None:
        caller = inspect.stack()[1].function
        basename = caller.removeprefix("task_")
    recipe, env = open_recipe(path)
    ctx = Context(recipe, env=env)  # lives as long as the doit process
    for task in task_dicts(ctx, prefix=f"{basename}:"):
        task["name"] = task["name"].removeprefix(f"{basename}:")
        yield task
