"""``run``, ``forecast``, ``clean`` and ``abandon`` as pipelines of plain steps.

A run: load the recipe -> select the targets -> plan (assess every step once)
-> confirm and check the budget against that plan -> execute it with doit ->
summarise. Each stage is a plain function, testable alone.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import xxhash

from acpbuild import process
from acpbuild.config.secrets import environment, redact
from acpbuild.engine import incremental, lastrun, lockfile, noop
from acpbuild.engine.context import Context
from acpbuild.engine.needs import check as check_needs
from acpbuild.engine.needs import unmet
from acpbuild.engine.plan import Plan, budget_for, make_plan
from acpbuild.engine.results import Event, RunResult, StepResult
from acpbuild.errors import AcpbuildError, BudgetExceeded, RecipeError, StoreError
from acpbuild.keys import Signature, signature
from acpbuild.recipe import Recipe, load_recipe
from acpbuild.recipe.draft import draft_recipe, drafted
from acpbuild.recipe.graph import closure, topological
from acpbuild.store import confine, layout
from acpbuild.store.blobs import LinkMode
from acpbuild.store.ledger import Generation
from acpbuild.words import counted

#: default parallelism: most steps wait on remote APIs, not on this machine
DEFAULT_JOBS = 16


RecipeSource = str | os.PathLike[str] | Recipe | None


def open_recipe(
    path: RecipeSource,
    env: Mapping[str, str] | None = None,
    *,
    draft: bool = False,
    items: Collection[str] | None = None,
) -> tuple[Recipe, Mapping[str, str]]:
    """The recipe at ``path`` (``acpbuild.toml`` by default; a loaded :class:`Recipe` as it is) and its environment.

    ``items`` loads the recipe with only those foreach items expanded (see :func:`load_recipe`).
    """
    if isinstance(path, Recipe):
        recipe = path
        if env is None:
            env = environment((recipe.path.parent, Path.cwd()))
    else:
        recipe_path, env = _located(path, env)
        recipe = load_recipe(recipe_path, env, items=items)
    return (draft_recipe(recipe) if draft else recipe), env


def _located(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None) -> tuple[Path, Mapping[str, str]]:
    """The recipe file ``path`` names, and its environment (``env``, else the process's and its ``.env``)."""
    recipe_path = Path(path) if path is not None else Path("acpbuild.toml")
    if env is None:
        env = environment((recipe_path.resolve().parent, Path.cwd()))
    return recipe_path, env


def _open_changed(
    path: RecipeSource, env: Mapping[str, str] | None, *, unmoved: bool = False
) -> tuple[Recipe, Mapping[str, str], incremental.Delta | None]:
    """The recipe of a whole run (or plan) and its environment; loaded for its changed items
    only when the last complete run says which they are (see :mod:`acpbuild.engine.incremental`)."""
    if not isinstance(path, Recipe):
        recipe_path, env = _located(path, env)
        found = incremental.delta(recipe_path.resolve(), env, unmoved=unmoved)
        if found is not None:
            recipe, env = open_recipe(path, env, items=found.ids)
            if incremental.fits(found, recipe):
                return recipe, env, found
    recipe, env = open_recipe(path, env)
    return recipe, env, None


#: a shard of a run: (I, N), the I-th of N, counted from 1
Shard = tuple[int, int]


def selected(recipe: Recipe, targets: Iterable[str] | None, shard: Shard | None = None) -> list[str]:
    """The steps and groups a run of ``targets`` (None: everything) builds, in build order.

    With ``shard`` (I, N), only the foreach items of shard I are built, and what
    they need: each item falls in one shard by a hash of its id, the same on
    every machine and whatever other items the recipe has, and every step of an
    item falls with it. Steps outside any foreach are left to a run without a shard.
    """
    deps = recipe.deps()
    order = topological(deps)
    if shard is not None:
        return _shard(recipe, targets, shard, deps, order)
    if not targets:
        lazy = recipe.lazy  # first_success members: their group runs them
        return [n for n in order if n not in lazy]
    wanted = closure(deps, recipe.expand(list(targets)))
    return [n for n in order if n in wanted]


def _shard(
    recipe: Recipe, targets: Iterable[str] | None, shard: Shard, deps: dict[str, tuple[str, ...]], order: list[str]
) -> list[str]:
    index, count = shard
    if not 1 <= index <= count:
        raise RecipeError(f"--shard {index}/{count}: a shard is I/N with 1 <= I <= N")
    pool = recipe.expand(list(targets)) if targets else list(recipe.steps)
    items = [name for name in pool if name in recipe.steps and recipe.steps[name].item is not None]
    if not items:
        raise RecipeError(
            f"--shard splits the items of foreach steps, and {'those targets have' if targets else recipe.name + ' has'} none",
            file=str(recipe.path),
        )
    mine = [name for name in items if shard_of(recipe.steps[name].item or "", count) == index]
    wanted = closure(deps, mine)
    return [n for n in order if n in wanted]


def shard_of(item: str, count: int) -> int:
    """The shard (1 to ``count``) a foreach item with id ``item`` falls in, on every machine alike."""
    return xxhash.xxh3_64_intdigest(item.encode("utf-8")) % count + 1


def forecast(
    path: RecipeSource = None,
    targets: Iterable[str] | None = None,
    *,
    draft: bool = False,
    budget: float | None = None,
    env: Mapping[str, str] | None = None,
    shard: Shard | None = None,
    needs: bool = True,
) -> Plan:
    """The plan with an estimate per step, the total a run would pay now, and the limits it must keep to.

    Needs no API key: estimates come from the price registry and the steps' parameters.
    With ``needs``, ``Plan.unmet`` says what a run would stop for before paying (keys not
    set, voices the account lacks; see :mod:`acpbuild.engine.needs`).
    """
    if not targets and not draft and shard is None:
        # the plan of a whole run: only the items changed since the last complete run are assessed
        recipe, env, delta = _open_changed(path, env, unmoved=True)
    else:
        (recipe, env), delta = open_recipe(path, env, draft=draft), None
    ctx = Context(recipe, env=env)
    try:
        plan = make_plan(ctx, selected(recipe, targets, shard), budget_for(recipe, ctx.ledger, env, budget))
        if delta is not None:
            plan = incremental.planned(delta, plan)
        if needs:
            plan.unmet = unmet(ctx, plan.calls)
        return plan
    finally:
        ctx.close()


def run(
    path: RecipeSource = None,
    targets: Iterable[str] | None = None,
    *,
    jobs: int | None = None,
    keep_going: bool = False,
    draft: bool = False,
    link: LinkMode = "copy",
    budget: float | None = None,
    env: Mapping[str, str] | None = None,
    on_event: Callable[[Event], None] | None = None,
    confirm: Callable[[Plan], None] | None = None,
    frozen: bool = False,
    shard: Shard | None = None,
) -> RunResult:
    """Build the recipe at ``path`` (or ``acpbuild.toml``): every step, or ``targets`` and what they need.

    Steps whose inputs are unchanged are skipped; generations already in the
    store are restored for free; only the rest call their provider. A whole run
    after some foreach items changed loads and builds only those (see
    :mod:`acpbuild.engine.incremental`); its result still lists every step. Raises
    :class:`~acpbuild.errors.RecipeError` for a bad recipe before any work;
    failed steps are reported in the result, not raised. ``draft`` swaps every
    paid step for a free local stand-in (see :mod:`acpbuild.recipe.draft`).

    The recipe is loaded once and planned once: ``confirm``, if given, sees that
    plan before anything is spent and may raise to stop the run (the CLI asks
    the user there); the budget is checked against it, and it is what runs.
    Before ``confirm``, every step the plan would call a paid provider for
    (a first_success group's fallbacks too) must have its key and what its
    account must hold: :class:`~acpbuild.errors.NotReady` names everything
    missing, and nothing is spent (see :mod:`acpbuild.engine.needs`).

    ``budget`` (USD; default the recipe's ``budget_usd``) and the monthly cap of
    the user's config file limit what the run may pay. A run whose plan is over
    a limit raises :class:`~acpbuild.errors.BudgetExceeded` before any call,
    unless ``keep_going``, which builds what fits. Each paid call reserves its
    estimate first; a call that would cross a limit is not made, its step fails
    (``refused``), its dependants are skipped, the others go on, and
    ``exit_code`` is 3.

    ``frozen`` (CI) restores what the store holds and runs free steps, but never
    pays: each step that would call a paid provider is refused (``refused``,
    exit 3), and the rest go on.

    ``shard`` (I, N) builds the foreach items of shard I and what they need
    (see :func:`selected`): N machines of a CI matrix split the items, and a
    run without a shard then restores them all and builds the rest.
    """
    full = not targets and not draft and shard is None
    # a whole run whose last complete run says which foreach items changed loads only those
    recipe, env, delta = _open_changed(path, env) if full else (*open_recipe(path, env, draft=draft), None)
    names = selected(recipe, targets, shard)
    jobs = jobs or recipe.jobs or DEFAULT_JOBS
    # before any step (or the plan) reads an input: an edit made while the
    # build runs must not be mistaken for what it built
    before = _noop_snapshot(recipe, env) if full else None
    ctx = Context(recipe, env=env, link=link, on_event=on_event, jobs=jobs)
    try:
        plan = make_plan(ctx, names, budget_for(recipe, ctx.ledger, env, budget, frozen=frozen))
        if not frozen:  # a frozen run calls no paid provider: it needs no key
            check_needs(ctx, plan.calls)
        if confirm is not None:
            confirm(plan)
        keep_going = keep_going or frozen  # frozen: restore and run what is free, refuse each purchase alone
        why_not = plan.over_budget()
        if why_not and not keep_going:
            raise BudgetExceeded(
                f"{why_not}; nothing was spent. Raise the budget, or run with --keep-going to build what fits"
            )
        ctx.budget = plan.budget
        if full:
            noop.forget(recipe.store_dir, recipe.name)
        notices = _doubts(ctx)
        if ctx.lock_problem:
            notices.append(f"{ctx.lock_problem}; this run writes it anew")
            ctx.emit(Event("warning", message=notices[-1]))
        try:
            result = execute(ctx, plan, jobs=jobs, keep_going=keep_going)
        except process.Interrupted as stopped:
            stopped.kept = kept(ctx)
            raise
        result.warnings[:0] = notices
        result.frozen = frozen
        if not draft:
            _write_lock(ctx, result, full=full and delta is None, gone=delta.gone if delta else ())
        if delta is not None:
            result = incremental.merged(delta, result)
        if before is not None and result.success and _complete(result):
            _save_noop(ctx, before, result, delta)
        if not draft:
            try:
                save_last_run(recipe, result)
            except StoreError as exc:  # the build is done: losing its summary is worth a warning, not a failure
                result.warnings.append(str(exc))
        ctx.emit(Event("finish"))
        return result
    finally:
        ctx.close()


def save_last_run(recipe: Recipe, result: RunResult) -> None:
    """Keep ``result`` in the store as the recipe's last run, for ``acpbuild report``."""
    lastrun.save(recipe.store_dir, recipe.name, result.to_dict())


def last_run(recipe: Recipe) -> dict[str, Any] | None:
    """The recipe's last run (``RunResult.to_dict()``), or None when none was kept."""
    return lastrun.load(recipe.store_dir, recipe.name)


def kept(ctx: Context) -> str:
    """What a stopped run keeps, in a few words: the steps it finished, and the paid jobs
    still running at the provider, each resumed (not paid for again) by the next run."""
    done = [r for r in list(ctx.results.values()) if r.status in ("ran", "restored", "uptodate")]
    try:
        jobs = [
            g
            for g in ctx.ledger.generations()
            if g.recipe == ctx.recipe.name and g.state == "submitted" and g.request_id
        ]
    except AcpbuildError:
        jobs = []
    said = f"kept {counted(len(done), 'finished step')}"
    if jobs:
        ids = ", ".join(f"{g.step} ({g.request_id})" for g in jobs)
        said += f" and {counted(len(jobs), 'paid job')} to resume: {ids}"
    return said


def _doubts(ctx: Context) -> list[str]:
    """Warn once about earlier attempts that were sent but never answered: they may have been billed."""
    ctx.ledger.mark_lost(ctx.recipe.name)
    found = ctx.ledger.doubts(ctx.recipe.name, unwarned=True)
    if not found:
        return []
    steps = sorted({g.step or "?" for g in found})
    usd = sum(g.estimated_cost or 0.0 for g in found)
    message = (
        f"{counted(len(found), 'earlier request')} of {', '.join(steps)} "
        f"{'were' if len(found) != 1 else 'was'} sent but never answered (the run stopped or the answer was lost): "
        f"possibly billed, ~${usd:.4f} at their estimates, counted by acpbuild costs and the monthly cap. "
        f"Once you know they were not billed: acpbuild abandon {ctx.recipe.path.name} {' '.join(steps)}"
    )
    ctx.emit(Event("warning", message=message))
    return [message]


def execute(ctx: Context, plan: Plan, *, jobs: int, keep_going: bool = False) -> RunResult:
    """Run ``plan`` with doit's parallel runner; every selected step gets a result."""
    from doit.doit_cmd import DoitMain

    from acpbuild.engine.tasks import RecipeLoader, batches

    recipe, names = ctx.recipe, plan.names
    ctx.emit(Event("start", total=len(names)))
    parts = batches(recipe, names)
    # what exists now (the recipe, the plan) outlives the run: each batch's collection
    # below looks at that batch's objects only (unless the caller froze objects itself)
    freezing = len(parts) > 1 and gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    try:
        for batch in parts:
            loader = RecipeLoader(ctx, jobs=jobs, keep_going=keep_going, names=batch)
            # doit reports what stops it before any task runs (say, a target that is
            # also a file_dep) on stderr and in its exit code: keep both as the run's error
            said = io.StringIO()
            with contextlib.redirect_stderr(said):
                code = DoitMain(loader, config_filenames=()).run(["run", *batch])
            # doit also says 2 when it skipped the dependants of a failed step (--keep-going,
            # a refused call): then every task reached the reporter, and nothing stopped the run
            if code not in (0, 1) and not all(name in ctx.results for name in batch):
                detail = " ".join(said.getvalue().split()) or "no message"
                ctx.runtime_errors.append(redact(f"doit stopped the run (exit {code}): {detail}", ctx.env))
                break
            if (code != 0 and not loader.goes_on) or process.stopping():
                break  # a step failed and the run stops there (doit stopped its batch), or acpbuild was stopped
            if freezing:
                del loader
                gc.collect()  # doit's tasks and their actions refer to each other
                gc.freeze()
    finally:
        if freezing:
            gc.unfreeze()
    results: dict[str, StepResult] = {}
    for name in names:
        group = recipe.groups.get(name)
        for member in group.members if group else ():
            # first_success members the group ran itself, each with its own status
            if member not in results and member in ctx.results:
                results[member] = ctx.results[member]
        provider, model = recipe.who(name)
        results[name] = ctx.results.get(name) or StepResult(
            name,
            "skipped",
            provider=provider,
            model=model,
            reason=(
                "not run: doit stopped the run"
                if ctx.runtime_errors
                else "not run: an earlier step failed (--keep-going runs what it can)"
            ),
        )
    for group in recipe.groups.values():
        # members keep their group even when it never ran (a member failed)
        for member in group.members:
            if member in results:
                results[member].group = group.name
    return RunResult(
        recipe.name,
        results,
        # a step can fail after paying (its result refused by the store): that counts too
        total_cost=sum(r.cost for r in results.values() if r.status in ("ran", "failed")),
        errors=list(ctx.runtime_errors),
        drafted=[n for n in drafted(recipe) if n in results],
        estimated_cost=sum(r.estimated_cost for r in results.values() if r.status == "ran"),
        warnings=list(ctx.budget.warnings),
    )


def _noop_snapshot(recipe: Recipe, env: Mapping[str, str]) -> dict[str, Any]:
    """What the build is about to read, for the no-op fast path (see :func:`noop.snapshot`)."""
    from acpbuild.engine.tasks import input_files
    from acpbuild.providers import provider_class

    inputs = {p for step in recipe.steps.values() for p in input_files(step)}
    adapters = {name: provider_class(name) for name in sorted({s.provider for s in recipe.steps.values()})}
    doc = noop.snapshot(recipe.path, recipe.digest, env, recipe.env_names, sorted(inputs), recipe.sources, adapters)
    # what `plan` and `check` say of an unchanged recipe without loading it (see noop.forecast)
    return {**doc, "lazy": sorted(recipe.lazy), "budget_usd": recipe.budget_usd}


def _write_lock(ctx: Context, result: RunResult, *, full: bool, gone: Collection[str] = ()) -> None:
    """Bring the recipe's lockfile up to date with what this run left in each output.

    A step that failed or was skipped keeps its earlier entry; a full run drops
    the entries of steps the recipe no longer has, an incremental one those of
    the items that are ``gone``.
    """
    recipe = ctx.recipe
    entries = {
        n: e
        for n, e in ctx.lock.items()
        if (not full or n in recipe.steps or n in recipe.groups) and n not in gone
    }
    held = ctx.recorded()  # read once a run, not once per step
    for name, made in result.steps.items():
        if made.status in ("failed", "skipped") or not made.key:
            continue
        group = recipe.groups.get(name)
        if group is not None and group.output_path is None:
            continue  # collect_all: its members' entries say it all
        path = group.output_path if group is not None else recipe.steps[name].output_path
        assert path is not None
        # the ledger's word, checked against the disk: an output edited after its step is never locked
        record = held.get(str(path))
        if record is None or record.key != made.key or ctx.digests.digest(path) != record.digest:
            continue
        before = ctx.lock.get(name)
        if before is not None and before.key == made.key:
            cost = before.cost  # the same generation: what it cost has not changed
        elif made.status == "ran" and group is None:
            cost = made.cost  # bought by this run
        else:
            done = ctx.ledger.find_done(made.key)
            cost = (done.actual_cost or 0.0) if done is not None else 0.0
        entries[name] = lockfile.Entry(
            name,
            made.key,
            made.provider,
            made.model,
            cost,
            ((lockfile.relative(recipe, path), record.digest),),
            record.material if group is not None else None,
        )
    lockfile.write(lockfile.lock_path(recipe.path), recipe.name, entries.values())


def _complete(result: RunResult) -> bool:
    """Whether every step was built: none skipped, but for a group's members it did not need
    (a first_success group's fallbacks once one member succeeded)."""
    for made in result.steps.values():
        if made.status != "skipped":
            continue
        group = result.steps.get(made.group or "")
        if group is None or group.status in ("failed", "skipped"):
            return False
    return True


def _save_noop(ctx: Context, before: dict[str, Any], result: RunResult, delta: incremental.Delta | None) -> None:
    """Remember what this complete, successful run wrote, beside what it read, for the no-op
    fast path (merged with the last run's when this one loaded only the changed items)."""
    recipe = ctx.recipe
    outputs: set[Path] = set()
    for step in recipe.steps.values():
        made = result.steps.get(step.name)
        if made is None or made.status not in ("failed", "skipped"):
            outputs.add(step.output_path)
    outputs.update(g.output_path for g in recipe.groups.values() if g.output_path is not None)
    # An output edited after its step finished no longer holds what the ledger
    # says: the full path would restore it, so the fast path must not vouch for it.
    held = ctx.recorded()
    verified: dict[Path, Signature | None] = {}
    for path in sorted(outputs):
        found, record = ctx.digests.signed(path), held.get(str(path))
        verified[path] = found[0] if found is not None and record is not None and found[1] == record.digest else None
    # which member each choosing group's output holds, as `plan` says it (see noop.forecast)
    chosen = {}
    for group in recipe.groups.values():
        record = held.get(str(group.output_path))
        if record is not None and record.material:
            chosen[group.name] = json.loads(record.material).get("chosen")
    before = {**before, "chosen": chosen}
    # the lockfile is part of what a run leaves: deleted or edited, the next run writes it again
    lock = lockfile.lock_path(recipe.path)
    verified[lock] = signature(lock)
    steps = [
        {"name": r.name, "key": r.key, "outputs": r.outputs, "provider": r.provider, "model": r.model}
        for r in result.steps.values()
        # a first_success member that failed or was not tried has nothing to report as up to date
        if r.status not in ("failed", "skipped")
    ]
    if delta is None:
        noop.save(recipe.store_dir, recipe.name, before, verified, steps, incremental.shape(recipe))
    else:
        incremental.save(delta, recipe, before, verified, steps)



def abandon(
    path: RecipeSource, targets: Iterable[str], *, env: Mapping[str, str] | None = None
) -> dict[str, list[Generation]]:
    """Give up the jobs kept to resume for ``targets`` (steps, foreach steps or groups' members),
    and their possibly billed attempts.

    A job a free stage failed on stays in the ledger for the next run to resume;
    when it never can (say the provider lost it), abandoning it lets the next run
    submit, and pay for, a new one. A possibly billed attempt stops counting as
    spend. Returns step -> the generations given up.
    """
    recipe, env = open_recipe(path, env)
    names = recipe.expand(list(targets))
    for name in names:
        if name not in recipe.steps and name not in recipe.groups:
            raise RecipeError(f"no step or group {name!r} in {recipe.name}", tip="acpbuild list shows them")
    steps = [m for n in names for m in (recipe.groups[n].members if n in recipe.groups else (n,))]
    ledger = layout.open_ledger(recipe.store_dir, env)
    try:
        return {step: ledger.abandon(recipe.name, step) for step in steps}
    finally:
        ledger.close()


def clean(
    path: RecipeSource = None, *, orphans: bool = False, env: Mapping[str, str] | None = None
) -> list[Path]:
    """Remove the recipe's outputs (the store keeps every generation). Return what was removed.

    With ``orphans``, remove only outputs this recipe once made that no step makes
    any more (a foreach item whose file was deleted, a renamed output).
    """
    recipe, env = open_recipe(path, env)
    ctx = Context(recipe, env=env)
    current = {step.output_path for step in recipe.steps.values()}
    current.update(g.output_path for g in recipe.groups.values() if g.output_path is not None)
    if orphans:
        targets = [Path(r.path) for r in ctx.ledger.outputs_of(recipe.name) if Path(r.path) not in current]
    else:
        targets = sorted(current)
    removed = []
    try:
        for target in targets:
            # only what lies in output_dir, and never through a symlink out of it
            if target.is_relative_to(recipe.output_dir) and confine.remove(target, recipe.output_dir):
                removed.append(target)
            ctx.ledger.drop_output(target)
    except OSError as exc:
        raise AcpbuildError(f"cannot remove {exc.filename}: {exc.strerror}") from exc
    finally:
        ctx.close()
    return removed
