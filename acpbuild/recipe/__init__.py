"""Recipes: the TOML file's shape, its resolution into steps and groups, and their expansion.

``file`` checks the shape (pydantic, unknown keys refused with file, line and
key); ``loader`` checks meaning against the provider catalogues and returns a
:class:`Recipe` (``model``); ``foreach`` and ``expansion`` turn one step into
many and bind groups; ``interpolate`` renders ``${...}``; ``graph`` orders the
steps; ``draft`` swaps paid steps for local stand-ins.
"""

from acpbuild.recipe.file import RecipeFile, read_file
from acpbuild.recipe.interpolate import Ref
from acpbuild.recipe.loader import BAD_NAME, load_recipe, name_problem, resolve
from acpbuild.recipe.model import DEFAULT_METRIC, MERGES, METRICS, Group, Recipe, Step

__all__ = [
    "BAD_NAME",
    "DEFAULT_METRIC",
    "MERGES",
    "METRICS",
    "Group",
    "Recipe",
    "RecipeFile",
    "Ref",
    "Step",
    "load_recipe",
    "name_problem",
    "read_file",
    "resolve",
]
