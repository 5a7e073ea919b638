"""Building one step: key it, then reuse what exists or pay for it once.

:func:`assess` decides, without side effects, whether a step is up to date,
restorable from the store, or must run, and why. :func:`build` is the action
doit runs for a step: compute the key -> already materialised? done ->
the ledger has it? restore (free) -> else call the provider, store the result,
commit the ledger, materialise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from acpbuild import money, providers
from acpbuild.config.secrets import redact
from acpbuild.errors import AcpbuildError, BadResponse, ProviderError, ProviderTimeout, StoreError
from acpbuild.keys import KEY_SCHEMA, DigestCache, canonical, key_of, signature
from acpbuild.money.estimate import Estimate, Unknown, estimate, expected_media, expected_text
from acpbuild.providers.base import Job, Provider
from acpbuild.recipe import Recipe, Step
from acpbuild.recipe.interpolate import Ref, render
from acpbuild.store.blobs import LinkMode, Store
from acpbuild.store.ledger import Generation, Ledger

Status = Literal["ran", "restored", "uptodate", "failed", "skipped"]
State = Literal["uptodate", "restorable", "run"]


@dataclass
class StepResult:
    """What happened to one step in a run."""

    name: str
    status: Status
    key: str | None = None
    outputs: list[str] = field(default_factory=list)
    cost: float = 0.0
    #: what the step was expected to cost before it ran ($0 when nothing was bought)
    estimated_cost: float = 0.0
    provider: str = ""
    model: str = ""
    reason: str = ""
    error: str | None = None
    seconds: float = 0.0
    #: the step failed because its call would have crossed the budget
    refused: bool = False
    #: the group this step is a member of
    group: str | None = None
    #: a failed first_success member whose group fell back to the next one: not a failure of the run
    fallback: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "key": self.key,
            "outputs": self.outputs,
            "cost": round(self.cost, 6),
            "estimated_cost": round(self.estimated_cost, 6),
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            **({"group": self.group} if self.group else {}),
        }


@dataclass
class Assessment:
    """Whether a step is up to date, restorable or must run, and why."""

    name: str
    state: State
    reason: str
    key: str | None = None
    digest: str | None = None
    #: what a run would pay for this step now ($0 unless it will run)
    estimate: Estimate = field(default_factory=lambda: Estimate(0.0, "nothing to buy"))
    #: a first_success group: what its fallbacks would add if the first member failed
    fallback_usd: float = 0.0


@dataclass
class Event:
    """Something a run reports as it goes; the CLI renders these."""

    kind: Literal["start", "step_start", "step_done", "warning", "finish"]
    step: str | None = None
    result: StepResult | None = None
    total: int = 0
    message: str = ""


class _UnknownInput(Exception):
    """An upstream output is not available yet, so the key cannot be computed."""


class Context:
    """Everything a run's steps share: recipe, store, ledger, providers, results."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        env: Mapping[str, str],
        link: LinkMode = "copy",
        on_event: Callable[[Event], None] | None = None,
        budget: money.Budget | None = None,
        jobs: int = 0,
    ) -> None:
        self.recipe = recipe
        # -j: how many steps work at once. doit runs more threads than this (see
        # tasks.RecipeLoader), so a step waiting for its provider's turn gives its
        # place to a step of another provider instead of holding it.
        self._work = threading.BoundedSemaphore(jobs) if jobs > 1 else None
        self._holds_work = threading.local()
        self.budget = budget or money.Budget()
        self._warned = 0
        self.env = env
        self.store = Store(recipe.store_dir, link)
        self.store.sweep()  # what a killed run of this machine left half-written
        self.ledger = Ledger(recipe.store_dir / "ledger.sqlite3")
        self.digests = DigestCache(self.ledger.load_digest, self.ledger.save_digest)
        self.on_event = on_event
        self.results: dict[str, StepResult] = {}
        self.runtime_errors: list[str] = []
        self._lock = threading.Lock()
        self._providers: dict[str, Provider] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def close(self) -> None:
        self.ledger.close()

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def flush_warnings(self) -> None:
        """Emit the budget warnings not yet emitted."""
        with self._lock:
            fresh = self.budget.warnings[self._warned :]
            self._warned += len(fresh)
        for message in fresh:
            self.emit(Event("warning", message=message))

    def provider(self, name: str) -> Provider:
        with self._lock:
            if name not in self._providers:
                self._providers[name] = providers.provider_class(name)(self.env)
            return self._providers[name]

    def slot(self, provider: str) -> threading.BoundedSemaphore:
        """The provider's concurrency limit: the recipe's ``concurrency``, else the adapter's own."""
        with self._lock:
            if provider not in self._slots:
                limit = self.recipe.concurrency.get(provider) or providers.provider_class(provider).concurrency
                self._slots[provider] = threading.BoundedSemaphore(limit)
            return self._slots[provider]

    @contextmanager
    def working(self) -> Iterator[None]:
        """Hold one of the run's ``-j`` places while a step does its work."""
        if self._work is None:
            yield
            return
        self._work.acquire()
        self._holds_work.held = True
        try:
            yield
        finally:
            self._holds_work.held = False
            self._work.release()

    @contextmanager
    def waiting_for(self, lock: threading.Lock | threading.BoundedSemaphore) -> Iterator[None]:
        """Hold ``lock``; while blocked on it, lend this step's ``-j`` place to another step.

        A step never waits on anything while it holds a place, so the places can
        never all be taken by steps waiting on one another or on a busy provider.
        """
        if not lock.acquire(blocking=False):
            lent = self._work if getattr(self._holds_work, "held", False) else None
            if lent is not None:
                lent.release()
            try:
                lock.acquire()
            finally:
                if lent is not None:
                    lent.acquire()
        try:
            yield
        finally:
            lock.release()

    def key_lock(self, key: str) -> threading.Lock:
        """One lock per key: two steps asking for the same generation pay once."""
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def record(self, result: StepResult) -> None:
        with self._lock:
            self.results[result.name] = result

    def output_digest(self, step: Step) -> str | None:
        return self.digests.digest(step.output_path)


# -- keys ---------------------------------------------------------------------
Upstream = Callable[[str], tuple[Path, str]]


def material(ctx: Context, step: Step, upstream: Upstream) -> dict[str, Any]:
    """The key material of ``step``, given where each upstream output is and its digest."""

    def key_value(ref: Ref) -> Any:
        path, digest = upstream(ref.step)
        if ctx.recipe.output_of(ref.step)[0] == "text":
            return path.read_text(encoding="utf-8")  # what the provider sees
        return {"digest": digest}

    def file_value(value: Any) -> Any:
        if isinstance(value, list):
            return [file_value(v) for v in value]
        if not isinstance(value, Path):
            return value
        digest = ctx.digests.digest(value)
        if digest is None:
            raise AcpbuildError(f"step {step.name!r}: input file {value} has disappeared")
        return {"digest": digest}

    # Keyed as the provider receives them: a default written out is the same request.
    model = ctx.provider(step.provider).catalogue().get(step.model)
    specs = model.params_for(step.kind) if model is not None else {}
    rendered = _with_defaults(specs, render(step.params, key_value))
    params = {name: file_value(value) for name, value in rendered.items()}
    mat = {
        "schema": KEY_SCHEMA,
        "kind": step.kind,
        "provider": step.provider,
        "model": step.model,
        "adapter": ctx.provider(step.provider).version,
        # the format decides the bytes (.mp3 or .wav); the file's name does not
        "format": step.output_path.suffix.lower(),
        "params": params,
    }
    if step.draft_of:
        # a draft is never mistaken for the paid generation it stands in for
        mat["draft_of"] = step.draft_of
    return mat


def current_upstream(ctx: Context) -> Upstream:
    """Upstream outputs as materialised in ``output_dir`` (during a run)."""

    def upstream(name: str) -> tuple[Path, str]:
        path = ctx.recipe.output_of(name)[1]
        digest = ctx.digests.digest(path)
        if digest is None:
            raise _UnknownInput(name)
        return path, digest

    return upstream


def is_current(ctx: Context, step: Step, key: str) -> bool:
    """Whether ``step``'s output file holds the generation ``key`` names, untouched."""
    record = ctx.ledger.output(step.output_path)
    return record is not None and record.key == key and ctx.output_digest(step) == record.digest


def why(ctx: Context, step: Step, mat: dict[str, Any]) -> str:
    """A short reason the step must run, from the last material built at its output."""
    record = ctx.ledger.output(step.output_path)
    if record is None or record.material is None:
        return "never built"
    before = json.loads(record.material)
    changed = [k for k in ("kind", "provider", "model", "adapter", "format") if before.get(k) != mat.get(k)]
    old, new = before.get("params", {}), mat["params"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changed.append(f"{name} {'added' if name not in old else 'removed' if name not in new else 'changed'}")
    return ", ".join(changed) if changed else "output missing or modified"


def assess(ctx: Context, order: list[str]) -> dict[str, Assessment]:
    """Assess the steps in ``order`` (dependencies first) without building anything."""
    found: dict[str, Assessment] = {}
    known: dict[str, tuple[Path, str]] = {}
    expected: dict[str, Unknown] = {}

    def upstream(name: str) -> tuple[Path, str]:
        if name not in known:
            raise _UnknownInput(name)
        return known[name]

    def one(step: Step) -> Assessment:
        return _assess_step(ctx, step, found, known, expected, upstream)

    for name in order:
        group = ctx.recipe.groups.get(name)
        if group is not None:
            from acpbuild.engine.groups import assess_group

            found[name] = assess_group(ctx, group, found, known, upstream, one)
        else:
            found[name] = one(ctx.recipe.steps[name])
    return found


def _assess_step(
    ctx: Context,
    step: Step,
    found: Mapping[str, Assessment],
    known: dict[str, tuple[Path, str]],
    expected: dict[str, Unknown],
    upstream: Upstream,
) -> Assessment:
    name = step.name
    pending = [d for d in step.deps if found.get(d) is None or found[d].state == "run"]
    if pending:
        entry = Assessment(name, "run", f"needs {', '.join(pending)}, which will run")
        entry.estimate = _plan_estimate(ctx, step, known, expected)
        return entry
    mat = material(ctx, step, upstream)
    key = key_of(mat)
    record = ctx.ledger.output(step.output_path)
    if record is not None and record.key == key and ctx.output_digest(step) == record.digest:
        known[name] = (step.output_path, record.digest)
        return Assessment(name, "uptodate", "up to date", key, record.digest)
    done = ctx.ledger.find_done(key)
    if done is not None and done.digest and ctx.store.has(done.digest):
        known[name] = (ctx.store.path(done.digest), done.digest)
        return Assessment(name, "restorable", "in the store (free)", key, done.digest)
    entry = Assessment(name, "run", why(ctx, step, mat), key)
    entry.estimate = _plan_estimate(ctx, step, known, expected)
    kept = ctx.ledger.find_resumable(key)
    if kept is not None:
        # an earlier run submitted this very generation: a run waits for that job
        entry.reason = f"resumes request {kept.request_id}, submitted by an earlier run"
        entry.estimate = Estimate(0.0, f"already submitted as {kept.request_id}; resuming it pays nothing more")
    return entry


def _plan_estimate(
    ctx: Context, step: Step, known: Mapping[str, tuple[Path, str]], expected: dict[str, Unknown]
) -> Estimate:
    """The estimate of a step that will run; outputs not made yet are what they are expected to be."""
    unknown: list[str] = []

    def value(ref: Ref) -> Any:
        media = ctx.recipe.output_of(ref.step)[0]
        if ref.step in known:
            path = known[ref.step][0]
            return path.read_text(encoding="utf-8") if media == "text" else path
        guess = expected.get(ref.step) or Unknown(why=f"output of {ref.step!r} unknown")
        if guess.why and media == "text":
            unknown.append(f"{ref.step}: {guess.why}")
        return guess

    provider = ctx.provider(step.provider)
    model = provider.catalogue()[step.model]
    params = _with_defaults(model.params_for(step.kind), render(step.params, value))
    if step.media == "text":
        expected[step.name] = expected_text(step.provider, model, step.kind, params, paid=provider.paid)
    else:
        expected[step.name] = expected_media(step.kind, params)
    found = estimate(step.provider, model, step.kind, params, paid=provider.paid)
    price = money.price_of(step.provider, step.model)
    by_text = price is not None and price.unit in ("1k_characters", "1m_tokens")
    if unknown and by_text and not found.guess:
        # a guessed upstream text went into a longer string: still a guess
        return Estimate(found.usd, found.formula, "; ".join(unknown))
    return found


def _with_defaults(specs: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    merged = {n: p.default for n, p in specs.items() if p.default is not None}
    merged.update(params)
    return merged


# -- building -------------------------------------------------------------------
class _Journal:
    def __init__(self, ledger: Ledger, gen_id: int, resume_id: str | None) -> None:
        self._ledger = ledger
        self._gen_id = gen_id
        self.resume_id = resume_id
        self.request_id = resume_id

    def submitted(self, request_id: str) -> None:
        self.request_id = request_id
        self._ledger.submitted(self._gen_id, request_id)


def uptodate(ctx: Context, step: Step) -> bool:
    """doit's ``uptodate`` check: the output holds the generation its inputs key."""
    try:
        return is_current(ctx, step, key_of(material(ctx, step, current_upstream(ctx))))
    except (_UnknownInput, AcpbuildError):
        return False


def build(ctx: Context, step: Step) -> StepResult:
    """Make ``step``'s output hold the generation its inputs key, paying only if no copy exists."""
    started = time.monotonic()
    result = StepResult(step.name, "ran", provider=step.provider, model=step.model, outputs=[str(step.output_path)])
    try:
        mat = material(ctx, step, current_upstream(ctx))
    except _UnknownInput as exc:
        raise AcpbuildError(f"step {step.name!r}: the output of {exc.args[0]!r} is missing") from None
    key = key_of(mat)
    result.key = key
    with ctx.waiting_for(ctx.key_lock(key)):
        if is_current(ctx, step, key):
            result.status, result.reason = "uptodate", "up to date"
        elif _restore(ctx, step, key, mat):
            result.status, result.reason = "restored", "restored from the store"
        else:
            result.reason = why(ctx, step, mat)
            result.cost, result.estimated_cost = _generate(ctx, step, key, mat)
    result.seconds = time.monotonic() - started
    return result


def _restore(ctx: Context, step: Step, key: str, mat: dict[str, Any]) -> bool:
    done = ctx.ledger.find_done(key)
    if done is None or not done.digest or not ctx.store.has(done.digest):
        return False
    try:
        _materialise(ctx, step, key, done.digest, mat)
    except StoreError:
        return False  # a corrupt blob is set aside; generate it again
    ctx.ledger.restored(done, recipe=ctx.recipe.name, step=step.name)
    return True


def _materialise(ctx: Context, step: Step, key: str, digest: str, mat: dict[str, Any]) -> None:
    ctx.store.materialise(digest, step.output_path)
    sig = signature(step.output_path)
    if sig is not None:
        ctx.digests.remember(step.output_path, sig, digest)
    ctx.ledger.set_output(
        step.output_path, key=key, digest=digest, material=canonical(mat), recipe=ctx.recipe.name, step=step.name
    )


def job_params(ctx: Context, step: Step) -> dict[str, Any]:
    """The step's parameters for the provider: outputs resolved, model defaults filled in."""

    def value(ref: Ref) -> Any:
        media, path = ctx.recipe.output_of(ref.step)
        return path.read_text(encoding="utf-8") if media == "text" else path

    provider = ctx.provider(step.provider)
    model = provider.catalogue()[step.model]
    return _with_defaults(model.params_for(step.kind), render(step.params, value))


def _generate(ctx: Context, step: Step, key: str, mat: dict[str, Any]) -> tuple[float, float]:
    """Pay for the generation ``key`` names; return (actual cost, estimated cost)."""
    provider = ctx.provider(step.provider)
    model = provider.catalogue()[step.model]
    params = job_params(ctx, step)
    expected = estimate(step.provider, model, step.kind, params, paid=provider.paid).usd
    pending = ctx.ledger.find_resumable(key)
    if provider.paid and pending is None:
        # before the ledger row: a refused call leaves no trace of a generation.
        # A job an earlier run submitted is not held against the budget: waiting
        # for it costs nothing more, and refusing to would only lose what is paid.
        ctx.budget.reserve(step.name, expected)
        ctx.flush_warnings()
    try:
        cost = _call(ctx, step, key, mat, provider, model, params, expected, pending)
    except ProviderError as exc:
        if exc.sent:
            # the request reached the provider, which may bill it (or bill the job it
            # keeps running): the estimate stays spent, so what follows cannot overspend
            ctx.budget.settle(step.name, None)
        else:
            ctx.budget.release(step.name)
        raise
    except BaseException:
        ctx.budget.release(step.name)
        raise
    ctx.budget.settle(step.name, cost)
    ctx.flush_warnings()
    return cost or 0.0, expected


def _call(
    ctx: Context,
    step: Step,
    key: str,
    mat: dict[str, Any],
    provider: Provider,
    model: providers.Model,
    params: dict[str, Any],
    expected: float,
    pending: Generation | None,
) -> float | None:
    if pending is not None:
        gen_id = pending.id
    else:
        gen_id = ctx.ledger.begin(
            key,
            recipe=ctx.recipe.name,
            step=step.name,
            kind=step.kind,
            provider=step.provider,
            model=step.model,
            material=canonical(mat),
            estimated_cost=expected,
            draft=step.draft_of is not None,
            cap=ctx.budget.cap if provider.paid else None,
        )
    journal = _Journal(ctx.ledger, gen_id, pending.request_id if pending else None)
    staging = ctx.store.staging(step.output_path.suffix)
    job = Job(step.kind, model, params, staging, step.timeout_s)
    try:
        with ctx.waiting_for(ctx.slot(step.provider)):
            outcome = provider.generate(job, journal)
        if not staging.is_file() or staging.stat().st_size == 0:
            raise BadResponse("the provider reported success but wrote no output", provider=step.provider)
    except ProviderError as exc:
        # Once the provider has a request id the job exists and may be billed. Unless
        # the provider says the job itself failed, what broke was free (a poll, the
        # result fetch, the download, our time limit): the row stays "submitted" and
        # the next run resumes that job instead of paying for a new one.
        resumable = journal.request_id is not None and not exc.job_failed
        if resumable and not isinstance(exc, ProviderTimeout):  # a timeout already says so
            exc.note = f"request {journal.request_id} is kept: the next run resumes it without paying again"
        ctx.ledger.fail(gen_id, redact(str(exc), ctx.env), resumable=resumable)
        staging.unlink(missing_ok=True)
        raise
    except BaseException:
        staging.unlink(missing_ok=True)  # an interrupted call stays "submitted" for the next run
        raise
    digest = ctx.store.put(staging)
    cost = money.actual_cost(
        step.provider, step.model, outcome.actual_cost, outcome.usage, job.params, provider.paid
    )
    if cost is None and provider.paid:
        cost = expected  # neither the provider nor the output says: the estimate stands for it
    ctx.ledger.finish(
        gen_id,
        digest=digest,
        actual_cost=cost,
        request_id=outcome.request_id,
        usage=outcome.usage,
        meta=outcome.meta,
    )
    _materialise(ctx, step, key, digest, mat)
    return cost
