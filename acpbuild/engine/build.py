"""Building one step: reuse what exists, or pay for it once.

:func:`build` is the action doit runs for a step: prepare its key (computed
once per run, see :mod:`~acpbuild.engine.material`) -> already materialised?
done -> the ledger has it? restore (free) -> else claim the key in the ledger
(waiting while another run holds it, then restoring what that run made) -> call
the provider, store the result, commit the ledger and release the claim in one
transaction, materialise.

Whatever breaks after the request was sent keeps what was paid for: a job with a
request id stays resumable, bytes that arrived but could not be stored are kept
for the next run, and an answer lost on the way is recorded as possibly billed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from acpbuild import money, process, providers
from acpbuild.config.secrets import redact
from acpbuild.engine.context import Context
from acpbuild.engine.material import (
    Prepared,
    UnknownInput,
    why,
)
from acpbuild.engine.results import Event, StepResult
from acpbuild.errors import (
    AcpbuildError,
    BadResponse,
    BudgetExceeded,
    ProviderError,
    ProviderTimeout,
    StoreError,
)
from acpbuild.money.estimate import estimate
from acpbuild.provider import Job, Provider
from acpbuild.provider.outputs import check_output
from acpbuild.recipe import Step
from acpbuild.store.ledger import Generation, Ledger, latest


class _Journal:
    """The generation's row, as the provider's call goes: written before a paid request is
    sent; for a free one, once there is something to keep (a request id to resume, an
    error, the result)."""

    def __init__(self, ledger: Ledger, begin: Callable[[], int], pending: Generation | None, *, paid: bool) -> None:
        self._ledger = ledger
        self._begin = begin
        self.gen_id = pending.id if pending is not None else begin() if paid else None
        self.resume_id = pending.request_id if pending is not None else None
        self.request_id = self.resume_id

    def row(self) -> int:
        """The generation's row id, written now if it was not yet."""
        if self.gen_id is None:
            self.gen_id = self._begin()
        return self.gen_id

    def submitted(self, request_id: str) -> None:
        self.request_id = request_id
        self._ledger.submitted(self.row(), request_id)


def uptodate(ctx: Context, step: Step) -> bool:
    """doit's ``uptodate`` check: the output holds the generation its inputs key."""
    try:
        prepared = ctx.prepare(step, ctx.current_upstream)
        return ctx.is_current(step, prepared.key, prepared.said)
    except (UnknownInput, AcpbuildError):
        return False


def build(ctx: Context, step: Step) -> StepResult:
    """Make ``step``'s output hold the generation its inputs key, paying only if no copy exists."""
    started = time.monotonic()
    result = StepResult(step.name, "ran", provider=step.provider, model=step.model, outputs=[str(step.output_path)])
    try:
        prepared = ctx.prepare(step, ctx.current_upstream)
    except UnknownInput as exc:
        raise AcpbuildError(f"step {step.name!r}: the output of {exc.args[0]!r} is missing") from None
    key, mat = prepared.key, prepared.material
    result.key = key
    with ctx.waiting_for(ctx.key_lock(key)):
        if ctx.is_current(step, key, prepared.said):
            result.status, result.reason = "uptodate", "up to date"
        elif _restore(ctx, step, key, prepared.said):
            result.status, result.reason = "restored", "restored from the store"
        else:
            provider = ctx.provider(step.provider)
            model = provider.catalogue()[step.model]
            expected = estimate(step.provider, model, step.kind, prepared.params, paid=provider.paid).bound
            if provider.paid and not _claim(ctx, step, prepared, expected):
                result.status, result.reason = "restored", "restored from the store (made by another run)"
            else:
                result.reason = why(ctx.output_record(step.output_path), mat)
                result.estimated_cost = expected
                try:
                    result.cost = _generate(ctx, step, prepared, expected, result)
                finally:
                    if provider.paid:  # a finished generation released its claim with its row
                        ctx.ledger.release(key, ctx.owner)
    result.seconds = time.monotonic() - started
    return result


def failed(ctx: Context, step: Step, exc: AcpbuildError) -> StepResult:
    """The result of a step whose build raised ``exc``: refused by the budget, or failed,
    with what it paid or may have paid on the way."""
    if isinstance(exc, BudgetExceeded):
        return StepResult(
            step.name, "failed", provider=step.provider, model=step.model, error=str(exc), refused=True, estimated_cost=exc.usd
        )
    return StepResult(
        step.name,
        "failed",
        provider=step.provider,
        model=step.model,
        error=redact(str(exc), ctx.env),
        cost=exc.paid,
        possibly_billed=exc.possibly_billed,
    )


def _claim(ctx: Context, step: Step, prepared: Prepared, usd: float) -> bool:
    """Claim the step's key for this run (buying what costs ``usd``): True once it is ours,
    False when the run that held it made it meanwhile and it was restored. A live claim is
    waited for."""
    key = prepared.key
    announced = False
    while True:
        got = ctx.ledger.claim(
            key,
            ctx.owner,
            lease_s=ctx.lease_s,
            recipe=ctx.recipe.name,
            step=step.name,
            provider=step.provider,
            model=step.model,
            estimate=usd,
        )
        if got.held_by is None:
            ctx.heartbeat()
            if got.taken_from is not None:
                ctx.emit(Event("warning", message=f"{step.name}: took over the claim of {got.taken_from}, which stopped"))
            # another run may have finished it between our store check and the claim
            if _restore(ctx, step, key, prepared.said):
                ctx.ledger.release(key, ctx.owner)
                return False
            return True
        if not announced:
            announced = True
            doing = f" ({got.step})" if got.step and got.step != step.name else ""
            ctx.emit(Event("waiting", step=step.name, message=f"waiting for {got.held_by}{doing}"))
        ctx.wait_for_claim(key, got.lease_left)


def _restore(ctx: Context, step: Step, key: str, said: str) -> bool:
    done = ctx.ledger.find_done(key)
    if done is None or not done.digest or not ctx.store.has(done.digest):
        return False
    try:
        ctx.materialise(step.output_path, step.name, key, done.digest, said)
    except StoreError:
        return False  # a corrupt blob is set aside; generate it again
    ctx.ledger.restored(done, recipe=ctx.recipe.name, step=step.name)
    return True


def _generate(ctx: Context, step: Step, prepared: Prepared, expected: float, result: StepResult) -> float:
    """Pay for the generation ``prepared`` keys, expected to cost ``expected``; return what it cost."""
    key, said, params = prepared.key, prepared.said, prepared.params
    provider = ctx.provider(step.provider)
    if process.stopping():
        # the run was stopped (SIGTERM, Ctrl-C) while this step waited its turn: buy nothing more
        raise ProviderError("not sent: acpbuild is stopping", provider=step.provider, sent=False)
    model = provider.catalogue()[step.model]
    history = ctx.ledger.history(key)  # read once: a paid key is claimed by this run, no other adds to it now
    stored = _store_kept(ctx, step, key, said, latest(history, "received"))
    if stored is not None:
        result.reason = "stored the result an earlier run paid for and kept"
        return stored
    pending = latest(history, "resumable")
    if provider.paid and pending is None:
        # before the ledger row: a refused call leaves no trace of a generation.
        # A job an earlier run submitted is not held against the budget: waiting
        # for it costs nothing more, and refusing to would only lose what is paid.
        ctx.budget.reserve(step.name, expected)
        ctx.flush_warnings()
    try:
        cost = _call(ctx, step, key, said, provider, model, params, expected, pending)
    except ProviderError as exc:
        if exc.sent:
            # the request reached the provider, which may bill it (or bill the job it
            # keeps running): the estimate stays spent, so what follows cannot overspend
            ctx.budget.settle(step.name, None)
        else:
            ctx.budget.release(step.name)
        raise
    except AcpbuildError as exc:
        if exc.paid:  # paid for, then refused by the store: spent all the same
            ctx.budget.settle(step.name, exc.paid)
        else:
            ctx.budget.release(step.name)
        raise
    except BaseException:
        ctx.budget.release(step.name)
        raise
    ctx.budget.settle(step.name, cost)
    ctx.flush_warnings()
    return cost or 0.0


def _call(
    ctx: Context,
    step: Step,
    key: str,
    said: str,
    provider: Provider,
    model: providers.Model,
    params: dict[str, Any],
    expected: float,
    pending: Generation | None,
) -> float | None:
    def begin() -> int:
        return ctx.ledger.begin(
            key,
            recipe=ctx.recipe.name,
            step=step.name,
            kind=step.kind,
            provider=step.provider,
            model=step.model,
            material=said,
            estimated_cost=expected,
            draft=step.draft_of is not None,
            cap=ctx.budget.cap if provider.paid else None,
        )

    # A paid call's row is durable before the request is sent. A free call's waits for a
    # request id, an error or the result: until then there is nothing to resume or bill,
    # and a free step's rows at its end go in one transaction.
    journal = _Journal(ctx.ledger, begin, pending, paid=provider.paid)
    staging = ctx.store.staging(step.output_path.suffix)
    job = Job(step.kind, model, params, staging, step.timeout_s)
    try:
        with ctx.waiting_for(ctx.slot(step.provider)):
            outcome = provider.generate(job, journal)
        if not staging.is_file() or staging.stat().st_size == 0:
            raise BadResponse("the provider reported success but wrote no output", provider=step.provider)
        # every result, paid or local, must decode as what the step makes before it is stored
        check_output(staging, step.media, provider=step.provider)
    except ProviderError as exc:
        # Once the provider has a request id the job exists and may be billed. Unless
        # the provider says the job itself failed, what broke was free (a poll, the
        # result fetch, the download, our time limit): the row stays "submitted" and
        # the next run resumes that job instead of paying for a new one.
        resumable = journal.request_id is not None and not exc.job_failed
        # sent, no job to resume, and the provider did not say it failed: the answer was
        # lost on the way (a broken connection, our time limit), and it may be billed
        billed = provider.paid and exc.sent and not resumable and not exc.job_failed
        if resumable and not isinstance(exc, ProviderTimeout):  # a timeout already says so
            exc.note = f"request {journal.request_id} is kept: the next run resumes it without paying again"
        elif billed:
            exc.note = f"the request may have been billed: ~${expected:.4f} is counted as possibly billed"
            exc.possibly_billed = expected
        ctx.ledger.fail(journal.row(), redact(str(exc), ctx.env), resumable=resumable, billed=billed)
        staging.unlink(missing_ok=True)
        raise
    except BaseException:
        staging.unlink(missing_ok=True)  # an interrupted call's row stays "submitted" for the next run
        raise
    cost = money.actual_cost(
        step.provider, step.model, outcome.actual_cost, outcome.usage, job.params, provider.paid
    )
    if cost is None and provider.paid:
        cost = expected  # neither the provider nor the output says: the estimate stands for it
    try:
        digest = ctx.store.put(staging)
    except StoreError as exc:
        _keep(ctx, key, journal.row(), staging, journal.request_id, cost, outcome.usage, outcome.meta, exc, paid=provider.paid)

    def finish(gen_id: int) -> None:
        ctx.ledger.finish(
            gen_id,
            digest=digest,
            actual_cost=cost,
            request_id=outcome.request_id,
            usage=outcome.usage,
            meta=outcome.meta,
            owner=ctx.owner if provider.paid else None,  # a free step holds no claim to release
        )

    if journal.gen_id is not None:
        finish(journal.gen_id)
        ctx.materialise(step.output_path, step.name, key, digest, said)
        return cost
    ctx.place(step.output_path, digest)
    with ctx.ledger.together():
        finish(journal.row())
        ctx.note_output(step.output_path, step.name, key, digest, said)
    return cost


def _keep(
    ctx: Context,
    key: str,
    gen_id: int,
    staging: Path,
    request_id: str | None,
    cost: float | None,
    usage: dict[str, Any],
    meta: dict[str, Any],
    error: StoreError,
    *,
    paid: bool,
) -> NoReturn:
    """The store refused a paid result: keep its bytes for the next run, or its job resumable."""
    try:
        kept = ctx.store.keep(staging, key)
    except StoreError:
        staging.unlink(missing_ok=True)
        if request_id is not None:
            # the provider still holds the result: the next run fetches it again, free
            ctx.ledger.fail(gen_id, str(error), resumable=True)
            raise StoreError(
                f"{error}; request {request_id} is kept: once the store is writable again, "
                "the next run fetches its result without paying again"
            ) from error
        # a free provider's result costs nothing to make again: nothing may have been billed
        ctx.ledger.fail(gen_id, str(error), resumable=False, billed=paid)
        said = "the result was paid for but could not be kept anywhere" if paid else "the result could not be kept anywhere"
        lost = StoreError(f"{error}; {said}")
        lost.paid = cost or 0.0
        raise lost from error
    ctx.ledger.received(gen_id, actual_cost=cost, usage=usage, meta=meta, error=str(error))
    refused = StoreError(
        f"{error}; the paid result is kept at {kept}: once the store is writable again, "
        "the next run stores it without paying again"
    )
    refused.paid = cost or 0.0
    raise refused from error


def _store_kept(ctx: Context, step: Step, key: str, said: str, received: Generation | None) -> float | None:
    """Store the result an earlier run paid for but could not store (``received``); its cost, or None if there is none."""
    if received is None:
        return None
    kept = ctx.store.kept(key)
    if kept is None:
        ctx.ledger.fail(received.id, "its kept result is gone", resumable=False, billed=True)
        return None
    digest = ctx.store.put(kept)
    ctx.ledger.finish(
        received.id,
        digest=digest,
        actual_cost=received.actual_cost,
        request_id=None,
        usage=json.loads(received.usage or "{}"),
        meta=json.loads(received.meta or "{}"),
        owner=ctx.owner,
    )
    ctx.materialise(step.output_path, step.name, key, digest, said)
    return received.actual_cost or 0.0
