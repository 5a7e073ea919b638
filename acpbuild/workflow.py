"""``run``, ``plan`` and ``clean`` as pipelines of plain steps: load -> select -> compile -> execute -> summarise."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acpbuild.build import Assessment, Context, Event, StepResult, assess
from acpbuild.draft import draft_recipe, drafted
from acpbuild.errors import AcpbuildError
from acpbuild.graph import closure, topological
from acpbuild.recipe import Recipe, load_recipe
from acpbuild.secrets import environment
from acpbuild.store import LinkMode

#: default parallelism: most steps wait on remote APIs, not on this machine
DEFAULT_JOBS = 4


@dataclass
class RunResult:
    """The outcome of :func:`run`."""

    recipe: str
    steps: dict[str, StepResult]
    total_cost: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: steps a ``draft`` run replaced with local stand-ins
    drafted: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failed and not self.errors

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.steps.items() if r.status == "failed"]

    @property
    def outputs(self) -> dict[str, list[str]]:
        return {n: r.outputs for n, r in self.steps.items() if r.status not in ("failed", "skipped")}

    @property
    def exit_code(self) -> int:
        return 0 if self.success else 1

    def count(self, status: str) -> int:
        return sum(1 for r in self.steps.values() if r.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "success": self.success,
            "exit_code": self.exit_code,
            "steps": [r.to_dict() for r in self.steps.values()],
            "totals": {
                "steps": len(self.steps),
                **{s: self.count(s) for s in ("ran", "restored", "uptodate", "failed", "skipped")},
                "cost": round(self.total_cost, 6),
            },
            "errors": self.errors,
            "draft": bool(self.drafted),
            "drafted": self.drafted,
        }


def _open(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None, *, draft: bool = False
) -> tuple[Recipe, Mapping[str, str]]:
    recipe_path = Path(path) if path is not None else Path("acpbuild.toml")
    if env is None:
        env = environment((recipe_path.resolve().parent, Path.cwd()))
    recipe = load_recipe(recipe_path, env)
    return (draft_recipe(recipe) if draft else recipe), env


def _selected(recipe: Recipe, targets: Iterable[str] | None) -> list[str]:
    deps = {n: s.deps for n, s in recipe.steps.items()}
    order = topological(deps)
    if not targets:
        return order
    wanted = closure(deps, targets)
    return [n for n in order if n in wanted]


def run(
    path: str | os.PathLike[str] | None = None,
    targets: Iterable[str] | None = None,
    *,
    jobs: int | None = None,
    keep_going: bool = False,
    draft: bool = False,
    link: LinkMode = "copy",
    env: Mapping[str, str] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> RunResult:
    """Build the recipe at ``path`` (or ``acpbuild.toml``): every step, or ``targets`` and what they need.

    Steps whose inputs are unchanged are skipped; generations already in the
    store are restored for free; only the rest call their provider. Raises
    :class:`~acpbuild.errors.RecipeError` for a bad recipe before any work;
    failed steps are reported in the result, not raised. ``draft`` swaps every
    paid step for a free local stand-in (see :mod:`acpbuild.draft`).
    """
    from doit.doit_cmd import DoitMain

    from acpbuild.tasks import RecipeLoader

    recipe, env = _open(path, env, draft=draft)
    names = _selected(recipe, targets)
    jobs = jobs or recipe.jobs or DEFAULT_JOBS
    ctx = Context(recipe, env=env, link=link, on_event=on_event)
    try:
        ctx.emit(Event("start", total=len(names)))
        loader = RecipeLoader(ctx, jobs=jobs, keep_going=keep_going)
        DoitMain(loader, config_filenames=()).run(["run", *names])
        results = {}
        for name in names:
            results[name] = ctx.results.get(name) or StepResult(
                name,
                "skipped",
                provider=recipe.steps[name].provider,
                model=recipe.steps[name].model,
                reason="not run: an earlier step failed (--keep-going runs what it can)",
            )
        result = RunResult(
            recipe.name,
            results,
            total_cost=sum(r.cost for r in results.values() if r.status == "ran"),
            errors=list(ctx.runtime_errors),
            drafted=[n for n in drafted(recipe) if n in results],
        )
        ctx.emit(Event("finish"))
        return result
    finally:
        ctx.close()


def plan(
    path: str | os.PathLike[str] | None = None,
    targets: Iterable[str] | None = None,
    *,
    draft: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[Recipe, list[Assessment]]:
    """For each selected step: up to date, restorable from the store, or will run, and why."""
    recipe, env = _open(path, env, draft=draft)
    names = _selected(recipe, targets)
    ctx = Context(recipe, env=env)
    try:
        found = assess(ctx, names)
    finally:
        ctx.close()
    return recipe, [found[n] for n in names]


def clean(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> list[Path]:
    """Remove the recipe's outputs (the store keeps every generation). Return what was removed."""
    recipe, env = _open(path, env)
    ctx = Context(recipe, env=env)
    removed = []
    try:
        for step in recipe.steps.values():
            if step.output_path.exists():
                step.output_path.unlink()
                removed.append(step.output_path)
            ctx.ledger.drop_output(step.output_path)
    except OSError as exc:
        raise AcpbuildError(f"cannot remove {exc.filename}: {exc.strerror}") from exc
    finally:
        ctx.close()
    return removed
