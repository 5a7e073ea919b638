"""What a run's steps share: the recipe, the store and ledger, providers, ``-j`` places, results.

One :class:`Context` lives for one run (or for one doit process loading a
recipe's tasks). It lends ``-j`` places: a step blocked on a lock or on its
provider's concurrency gives its place to another step, so the places can never
all be held by steps waiting on one another.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from acpbuild import money, providers
from acpbuild.engine import lockfile, material
from acpbuild.engine.material import Prepared, UnknownInput, Upstream
from acpbuild.engine.results import Event, StepResult
from acpbuild.errors import AcpbuildError, RecipeError
from acpbuild.keys import DigestCache, signature
from acpbuild.provider import Provider
from acpbuild.recipe import Recipe, Step
from acpbuild.store import layout
from acpbuild.store.blobs import LinkMode
from acpbuild.store.ledger import OutputRecord, Owner

#: how long a claim holds without renewal; a run renews its claims every third of it
LEASE_S = 30.0

#: a recipe of more steps than this reads the ledger's records of its outputs and of the
#: project's file digests in one query each; a smaller one asks path by path
BULK = 256


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
        self.store = layout.open_blobs(recipe.store_dir, link, env)
        self.store.sweep()  # what a killed run of this machine left half-written
        self.ledger = layout.open_ledger(recipe.store_dir, env)
        # the project's digests in one query, not one per file (but for a few steps, such as the
        # changed items an incremental run loads, of a project of thousands)
        project = str(recipe.path.parent)
        self._bulk = len(recipe.steps) + len(recipe.groups) > BULK
        self.digests = DigestCache(
            self.ledger.load_digest,
            self.ledger.save_digest,
            (lambda: self.ledger.load_digests(project)) if self._bulk else None,
        )
        #: the ledger's output records of this recipe and below its output folder (see :meth:`recorded`)
        self._outputs: dict[str, OutputRecord] | None = None
        self._below = str(recipe.output_dir).rstrip("/") + "/"
        #: why the lockfile could not be read (say, merge-conflict markers): the run writes it anew
        self.lock_problem: str | None = None
        try:
            #: what the recipe's committed lockfile says each step holds
            self.lock = lockfile.read(lockfile.lock_path(recipe.path))
        except RecipeError as exc:
            self.lock, self.lock_problem = {}, str(exc)
        self._locked = lockfile.records(recipe, self.lock)
        #: this run, as the ledger's claims name it
        self.owner = Owner.this_process(uuid.uuid4().hex[:12])
        self.lease_s = float(env.get("ACPBUILD_CLAIM_LEASE_S") or LEASE_S)
        self._heartbeat: threading.Thread | None = None
        self._stopping = threading.Event()
        self.on_event = on_event
        self.results: dict[str, StepResult] = {}
        self.runtime_errors: list[str] = []
        #: each step's parameters and key, computed once per run (see :meth:`prepare`)
        self.prepared: dict[str, Prepared] = {}
        self._lock = threading.Lock()
        self._emitting = threading.Lock()
        self._providers: dict[str, Provider] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def close(self) -> None:
        self._stopping.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        for provider in self._providers.values():
            provider.close()
        self.ledger.close()

    def heartbeat(self) -> None:
        """Keep this run's claims alive while it works: renew their leases every third of a lease."""
        with self._lock:
            if self._heartbeat is not None:
                return
            self._heartbeat = threading.Thread(target=self._renew, name="acpbuild-claims", daemon=True)
            self._heartbeat.start()

    def _renew(self) -> None:
        while not self._stopping.wait(self.lease_s / 3):
            try:
                self.ledger.renew(self.owner, self.lease_s)
            except AcpbuildError:
                pass  # the ledger is busy or gone for now: the next beat tries again

    def wait_for_claim(self, key: str, lease_left: float | None = None) -> None:
        """Wait until another run's claim on ``key`` may have been released: at most a third of
        a lease, and no longer than the holder's lease has left (``lease_left``), so a dead
        holder's lapse is noticed as it happens. Meanwhile this step's ``-j`` place is lent:
        this machine builds other steps while another machine buys this one."""
        wait = self.lease_s / 3 if lease_left is None else min(self.lease_s / 3, lease_left + 0.05)
        with self._lending():
            self.ledger.wait_released(key, wait)

    def emit(self, event: Event) -> None:
        """Hand ``event`` to the caller's ``on_event``: one at a time, whichever of doit's threads sends it."""
        if self.on_event is not None:
            with self._emitting:
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
            with self._lending():
                lock.acquire()
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def _lending(self) -> Iterator[None]:
        """Give this step's ``-j`` place (if it holds one) to another step until the block ends."""
        lent = self._work if getattr(self._holds_work, "held", False) else None
        if lent is not None:
            lent.release()
        try:
            yield
        finally:
            if lent is not None:
                lent.acquire()

    def key_lock(self, key: str) -> threading.Lock:
        """One lock per key: two steps asking for the same generation pay once."""
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def record(self, result: StepResult) -> None:
        with self._lock:
            self.results[result.name] = result

    # -- keys ---------------------------------------------------------------------
    def prepare(self, step: Step, upstream: Upstream) -> Prepared:
        """``step`` rendered and keyed (see :func:`material.prepare`), once per run.

        A later call returns the same answer while every upstream output still has
        the digest it was prepared from; one that changed (a corrupt blob made
        again) prepares the step afresh.
        """
        known = self.prepared.get(step.name)
        if known is not None and all(_digest_now(upstream, n) == d for n, d in known.inputs.items()):
            return known
        found = material.prepare(
            step, upstream, recipe=self.recipe, digests=self.digests, provider=self.provider(step.provider)
        )
        self.prepared[step.name] = found
        return found

    def current_upstream(self, name: str) -> tuple[Path, str]:
        """An upstream output as materialised in ``output_dir`` now, and its digest."""
        path = self.recipe.output_of(name)[1]
        digest = self.digests.digest(path)
        if digest is None:
            raise UnknownInput(name)
        return path, digest

    def output_record(self, path: Path) -> OutputRecord | None:
        """What the output at ``path`` was last made to hold: the ledger's word, else the lockfile's."""
        return self._ledger_output(path) or self._locked.get(str(path))

    def records(self, path: Path) -> list[OutputRecord]:
        """Every word on what ``path`` holds whose digest is what the file holds now: the
        ledger's, then the lockfile's (a teammate's pull can make the ledger's out of date)."""
        digest = self.digests.digest(path)
        if digest is None:  # no file: nothing to ask the ledger about
            return []
        found = [self._ledger_output(path), self._locked.get(str(path))]
        return [r for r in found if r is not None and r.digest == digest]

    def recorded(self) -> dict[str, OutputRecord]:
        """The ledger's records of this recipe's outputs, and of every output below its output
        folder whoever made it, by path: read in one query each the first time, then kept up
        to date with what this run records."""
        if self._outputs is None:
            outputs = {r.path: r for r in self.ledger.outputs_of(self.recipe.name)}
            outputs.update((r.path, r) for r in self.ledger.outputs_below(self._below))
            self._outputs = outputs
        return self._outputs

    def _ledger_output(self, path: Path) -> OutputRecord | None:
        """The ledger's record of ``path``: for a big recipe from :meth:`recorded` (but a path
        outside its output folder), else asked path by path."""
        if not self._bulk:
            return self.ledger.output(path)
        said = str(path)
        found = self.recorded().get(said)
        return found if found is not None or said.startswith(self._below) else self.ledger.output(path)

    def is_current(self, step: Step, key: str, said: str) -> bool:
        """Whether ``step``'s output file holds the generation ``key`` names, untouched.

        An output only the lockfile vouches for (a fresh clone, a teammate's pull) is
        then recorded in the ledger as well.
        """
        record = next((r for r in self.records(step.output_path) if r.key == key), None)
        if record is None:
            return False
        if record is self._locked.get(str(step.output_path)):
            self._record_output(step.output_path, step.name, key, record.digest, said)
        return True

    def materialise(self, path: Path, name: str, key: str, digest: str, said: str) -> None:
        """Make the output at ``path`` (of step or group ``name``) hold blob ``digest``, and record it
        with the material (:func:`~acpbuild.keys.canonical` text) it was made from."""
        self.place(path, digest)
        with self.ledger.together():
            self.note_output(path, name, key, digest, said)

    def place(self, path: Path, digest: str) -> None:
        """Make the output at ``path`` hold blob ``digest``; :meth:`note_output` records it.

        The one place outputs are written: never outside the recipe's real ``output_dir``.
        """
        self.store.materialise(digest, path, inside=self.recipe.output_dir)

    def note_output(self, path: Path, name: str, key: str, digest: str, said: str) -> None:
        """Record that the output at ``path`` (of step or group ``name``) holds blob ``digest``."""
        sig = signature(path)
        if sig is not None:
            self.digests.remember(path, sig, digest)
        self._record_output(path, name, key, digest, said)

    def _record_output(self, path: Path, name: str, key: str, digest: str, said: str) -> None:
        self.ledger.set_output(path, key=key, digest=digest, material=said, recipe=self.recipe.name, step=name)
        if self._outputs is not None:
            self._outputs[str(path)] = OutputRecord(str(path), key, digest, said, self.recipe.name, name)


def _digest_now(upstream: Upstream, name: str) -> str | None:
    try:
        return upstream(name)[1]
    except UnknownInput:
        return None
