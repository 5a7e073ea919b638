"""One plan per run: the recipe is loaded once, assessed once, and each step keyed once.

These tests count calls to acpbuild's own stages while a real run goes through
doit and the local provider; the counting wrappers change nothing they wrap.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_recipe

import acpbuild
import acpbuild.engine.context
import acpbuild.engine.material
import acpbuild.engine.workflow
import acpbuild.recipe.loader
from acpbuild.cli import main
from acpbuild.engine.plan import Plan
from acpbuild.errors import SpendNotConfirmed

STEPS = ["script", "voice", "cover", "clip", "final"]


class Counts:
    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        #: step name -> how many times its parameters were rendered and keyed
        self.keyed: collections.Counter[str] = collections.Counter()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    found = Counts()

    def counting(module: Any, name: str, label: str, per_step: bool = False) -> None:
        real: Callable[..., Any] = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found.calls[label] += 1
            if per_step:
                found.keyed[args[0].name] += 1  # (step, upstream, ...)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(acpbuild.recipe.loader, "read_with_digest", "loads")
    counting(acpbuild.engine.workflow, "make_plan", "plans")
    counting(acpbuild.engine.material, "prepare", "keyed", per_step=True)
    real_init = acpbuild.engine.context.Context.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        found.calls["contexts"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(acpbuild.engine.context.Context, "__init__", init)
    monkeypatch.setenv("ACPBUILD_NO_FASTPATH", "1")  # the fast path would skip the run altogether
    return found


# (extra arguments to `acpbuild run`, what they prove)
@pytest.mark.parametrize(
    "extra",
    [
        [],  # a plain run
        ["--budget", "5"],  # a budget is checked against the same plan, not a second one
        ["-j", "1"],  # doit's sequential runner asks the same questions
    ],
)
def test_a_run_loads_plans_and_keys_each_step_once(tmp_path: Path, counts: Counts, extra: list[str]) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert main(["run", str(recipe), "--yes", *extra]) == 0
    assert counts.calls["loads"] == 1
    assert counts.calls["plans"] == 1
    assert counts.calls["contexts"] == 1
    assert dict(counts.keyed) == {name: 1 for name in STEPS}

    # nothing changed: every step is up to date, and still keyed only once
    counts.calls.clear()
    counts.keyed.clear()
    assert main(["run", str(recipe), "--yes", *extra]) == 0
    assert counts.calls["loads"] == 1 and counts.calls["plans"] == 1
    assert dict(counts.keyed) == {name: 1 for name in STEPS}


def test_an_edit_keys_the_edited_step_and_its_dependants_once(tmp_path: Path, counts: Counts) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    assert acpbuild.run(recipe, env={}).success
    recipe.write_text(recipe.read_text().replace("width = 160", "width = 176"))
    counts.keyed.clear()
    result = acpbuild.run(recipe, env={})
    assert {n for n, r in result.steps.items() if r.status == "ran"} == {"cover", "clip", "final"}
    # cover is keyed by the plan; clip and final only once cover's new output exists
    assert dict(counts.keyed) == {name: 1 for name in STEPS}


def test_the_confirmed_plan_is_the_one_that_runs(tmp_path: Path, counts: Counts) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)
    seen: list[Plan] = []
    result = acpbuild.run(recipe, env={}, budget=1.0, confirm=seen.append)
    assert result.success
    assert len(seen) == 1 and counts.calls["plans"] == 1
    assert seen[0].names == list(result.steps)
    assert [e.state for e in seen[0].entries] == ["run"] * len(STEPS)
    assert {name: r.key for name, r in result.steps.items()}["script"] == seen[0].entries[0].key


def test_a_refusal_at_confirmation_builds_nothing(tmp_path: Path) -> None:
    recipe = copy_recipe("chain.toml", tmp_path)

    def refuse(plan: Plan) -> None:
        raise SpendNotConfirmed(f"not paying for {len(plan.entries)} steps")

    with pytest.raises(SpendNotConfirmed, match="5 steps"):
        acpbuild.run(recipe, env={}, confirm=refuse)
    assert not (tmp_path / "out").exists()
