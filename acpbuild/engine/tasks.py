"""From recipe to doit: a ``TaskLoader2`` with one task per step, and the reporter.

Each task has a ``task_dep`` for every data edge, ``file_dep`` on the recipe's
external input files, its output as ``targets``, and an ``uptodate`` check
against the ledger. doit's own dependency file (sqlite3 backend, inside the
store) is only a fast path: deleting it costs nothing, because the action asks
the ledger before it asks a provider.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from doit.cmd_base import TaskLoader2
from doit.exceptions import BaseFail, TaskFailed, UnmetDependency
from doit.task import Task, dict_to_task

from acpbuild import process, providers
from acpbuild.config.secrets import redact
from acpbuild.engine.build import build, failed, uptodate
from acpbuild.engine.context import Context
from acpbuild.engine.groups import build_group
from acpbuild.engine.results import Event, StepResult
from acpbuild.errors import AcpbuildError
from acpbuild.recipe import Group, Recipe, Step
from acpbuild.recipe.graph import topological
from acpbuild.store import layout

F = TypeVar("F", bound=Callable[..., Any])


def _signed(function: F) -> F:
    """``function``, its signature worked out once: doit asks ``inspect.signature`` before
    each call of an action or uptodate check (some 40 us: 0.4 s over 10,000 steps)."""
    function.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return function


#: why a step that had not started when the run was stopped fails
_STOPPED = "not run: acpbuild was stopped"


@_signed
def _action(ctx: Context, step: Step) -> bool | TaskFailed:
    try:
        with ctx.working():
            if process.stopping():  # a thread that got its place after the signal starts nothing
                return TaskFailed(_STOPPED)
            result = build(ctx, step)
    except AcpbuildError as exc:
        failure = failed(ctx, step, exc)
        ctx.record(failure)
        return TaskFailed(failure.error or "")
    ctx.record(result)
    return True


@_signed
def _group_action(ctx: Context, group: Group) -> bool | TaskFailed:
    try:
        with ctx.working():
            if process.stopping():
                return TaskFailed(_STOPPED)
            result = build_group(ctx, group)
    except AcpbuildError as exc:
        message = redact(str(exc), ctx.env)
        ctx.record(StepResult(group.name, "failed", provider="group", model=group.merge, error=message))
        return TaskFailed(message)
    ctx.record(result)
    return True


_uptodate = _signed(uptodate)


def _group_task(ctx: Context, group: Group, prefix: str) -> dict[str, Any]:
    return {
        "name": prefix + group.name,
        # the action decides itself whether the choice is current: it is cheap and free
        "actions": [(_group_action, (ctx, group))],
        "task_dep": [prefix + d for d in group.deps],
        "targets": [str(group.output_path)] if group.output_path else [],
        "doc": group.description or f"group ({group.merge}) of {', '.join(group.members)}",
        "verbosity": 0,
        "io": {"capture": False},
    }


def _files(values: list[Any]) -> list[Path]:
    """The external input files among parameter values (lists included)."""
    found = []
    for value in values:
        if isinstance(value, list):
            found += _files(value)
        elif isinstance(value, Path):
            found.append(value)
    return found


def input_files(step: Step) -> list[Path]:
    """The external files a step reads (not other steps' outputs)."""
    return _files(list(step.params.values()))


def task_dicts(ctx: Context, names: list[str] | None = None, prefix: str = "") -> list[dict[str, Any]]:
    """doit task dictionaries for the recipe's steps (all in build order, or ``names``, given in build order).

    ``prefix`` namespaces the task names, for recipes loaded into another ``dodo.py``.
    Members of a first_success group that nothing else needs get no task of their own
    unless named: the group runs them, one at a time.
    """
    recipe = ctx.recipe
    if names is None:
        lazy = recipe.lazy
        names = [n for n in topological(recipe.deps()) if n not in lazy]
    tasks = []
    for name in names:
        if name in recipe.groups:
            tasks.append(_group_task(ctx, recipe.groups[name], prefix))
            continue
        step = recipe.steps[name]
        inputs = sorted({str(p) for p in input_files(step)})
        tasks.append(
            {
                "name": prefix + name,
                "actions": [(_action, (ctx, step))],
                "task_dep": [prefix + d for d in step.deps],
                "file_dep": inputs,
                "targets": [str(step.output_path)],
                # (function, args): doit inspects a partial's signature far more slowly
                "uptodate": [(_uptodate, (ctx, step))],
                "doc": step.description or f"{step.kind} with {step.provider}/{step.model} -> {step.output}",
                "verbosity": 0,
                # doit captures output by swapping sys.stdout, which threads race on;
                # our actions never print, so there is nothing to capture
                "io": {"capture": False},
            }
        )
    return tasks


class Reporter:
    """A doit reporter that turns doit's callbacks into acpbuild :class:`Event` s."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def initialize(self, tasks: Any, selected_tasks: Any) -> None:
        pass

    def get_status(self, task: Task) -> None:
        pass

    def execute_task(self, task: Task) -> None:
        self.ctx.emit(Event("step_start", step=task.name))

    def add_success(self, task: Task) -> None:
        self._done(task.name)

    def add_failure(self, task: Task, fail: BaseFail) -> None:
        provider, model = self.ctx.recipe.who(task.name)
        if isinstance(fail, UnmetDependency):
            result = StepResult(
                task.name, "skipped", provider=provider, model=model, reason=f"needs {fail.message}, which failed"
            )
            self.ctx.record(result)
        elif task.name not in self.ctx.results or self.ctx.results[task.name].status != "failed":
            # an exception escaped the action: a bug in acpbuild, reported with its traceback
            message = redact(fail.get_msg(), self.ctx.env)
            self.ctx.record(StepResult(task.name, "failed", provider=provider, model=model, error=message))
        self._done(task.name)

    def skip_uptodate(self, task: Task) -> None:
        step = self.ctx.recipe.steps[task.name]
        record = self.ctx.output_record(step.output_path)
        self.ctx.record(
            StepResult(
                task.name,
                "uptodate",
                key=record.key if record else None,
                outputs=[str(step.output_path)],
                provider=step.provider,
                model=step.model,
                reason="up to date",
            )
        )
        self._done(task.name)

    def skip_ignore(self, task: Task) -> None:
        pass

    def cleanup_error(self, exception: BaseException) -> None:
        pass

    def runtime_error(self, msg: str) -> None:
        self.ctx.runtime_errors.append(msg)

    def teardown_task(self, task: Task) -> None:
        pass

    def complete_run(self) -> None:
        pass

    def _done(self, name: str) -> None:
        self.ctx.emit(Event("step_done", step=name, result=self.ctx.results.get(name)))


#: the most threads doit starts; more waiting steps than this queue in doit itself
MAX_THREADS = 512

#: a run of more steps and groups than this hands them to doit a batch at a time
BATCH = 5000


def batches(recipe: Recipe, names: list[str], size: int | None = None) -> list[list[str]]:
    """``names`` (in build order) cut into batches of about ``size`` (default :data:`BATCH`),
    each in build order and made of whole connected parts of the graph: nothing in one
    batch waits on, or runs, a step of another.

    doit keeps a task object and a scheduler node (some 8 KiB) for every task it is
    given until its run ends: a batch at a time, a 100,000-step run holds those of
    a few thousand, not of every step. A part bigger than ``size`` is one batch.
    """
    size = BATCH if size is None else size
    if len(names) <= size:
        return [names]
    parent = {n: n for n in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name in names:
        group = recipe.groups.get(name)
        # a group waits on its members, or (first_success) runs them itself
        linked = recipe.steps[name].deps if group is None else (*group.deps, *group.members)
        for other in linked:
            if other in parent:
                parent[root(name)] = root(other)
    sizes: dict[str, int] = {}
    for name in names:
        top = root(name)
        sizes[top] = sizes.get(top, 0) + 1
    batch_of: dict[str, int] = {}
    count = filled = 0
    for top, n in sizes.items():  # parts in the order of their first name
        batch_of[top] = count
        filled += n
        if filled >= size:
            count, filled = count + 1, 0
    found: list[list[str]] = [[] for _ in range(count + (filled > 0))]
    for name in names:
        found[batch_of[root(name)]].append(name)
    return found


class RecipeLoader(TaskLoader2):
    """Loads a recipe's steps as doit tasks for ``DoitMain``."""

    def __init__(self, ctx: Context, *, jobs: int, keep_going: bool, names: list[str] | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.jobs = jobs
        self.keep_going = keep_going
        self.names = names
        self._dicts: list[dict[str, Any]] | None = None

    def load_doit_config(self) -> dict[str, Any]:
        return {
            "dep_file": str(layout.dep_file(self.ctx.recipe.store_dir, self.ctx.recipe.name)),
            "backend": "sqlite3",
            # the action checks content itself; doit only needs to notice a touched input
            "check_file_uptodate": "timestamp",
            "num_process": self._threads() if self.jobs > 1 else 0,
            "par_type": "thread",
            "continue": self.goes_on,
            "reporter": Reporter(self.ctx),
            "outfile": io.StringIO(),  # our reporter writes nothing; events go to the caller
            "verbosity": 0,
        }

    @property
    def goes_on(self) -> bool:
        """Whether a failed step leaves the others running: --keep-going, or under a
        budget, where a refused call fails its own step only and the steps that fit still run."""
        return self.keep_going or self.ctx.budget.limited

    def _threads(self) -> int:
        """How many threads doit runs tasks on: none of its own when every task does
        in-process Python only (threads would take turns on the interpreter, and
        pass it back and forth at every file or ledger call); else -j, and one more
        for each task that may wait on another run or machine (up to a bound): a paid
        step waiting for its provider's turn or for another run's claim blocks only
        its own thread, while Context.working keeps -j steps working."""
        recipe = self.ctx.recipe
        adapters = {name: providers.provider_class(name) for name in {s.provider for s in recipe.steps.values()}}
        names = list(recipe.steps) + list(recipe.groups) if self.names is None else self.names
        steps = [recipe.steps[n] for n in names if n in recipe.steps]
        if len(steps) == len(names) and all(s.kind in adapters[s.provider].in_process for s in steps):
            return 0
        waiting = len(names) - sum(1 for s in steps if not adapters[s.provider].paid)
        return self.jobs + min(waiting, MAX_THREADS - self.jobs)

    def _tasks(self) -> list[dict[str, Any]]:
        if self._dicts is None:
            self._dicts = task_dicts(self.ctx, self.names)
        return self._dicts

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Task]:
        return [dict_to_task(t) for t in self._tasks()]
