"""The ledger: the record of every generation, what each output holds, and file digests.

A paid generation is bought by at most one run at a time, whatever runs share
the ledger: before paying, a run :meth:`~Ledger.claim` s the key, renews the
lease while the provider works, and releases it when the generation is done (in
the same transaction) or failed. Another run meeting a live claim waits for it;
a dead claim (its process gone, or its lease run out) is taken over.

A generation's row is written before the provider is called (state
``submitted``), gets the provider's request id the moment the provider has one,
and turns ``done`` the moment its result is in the store: each write is
durable (and visible to every other process sharing the ledger) when the method
returns, so a crash never forgets a paid result, and a rerun finds a
``submitted`` row with a request id and resumes that job instead of paying again.
An attempt that was sent but whose answer was lost (its process died, the
connection broke) cannot be resumed: it becomes ``possibly_billed`` and counts
at its estimate until the user abandons it. A result whose bytes arrived but
could not be stored is ``received``: its bytes are kept for the next run.

:class:`Ledger` is the interface; a backend implements it (SQLite in
:mod:`acpbuild.store.sqlite`, PostgreSQL in :mod:`acpbuild.store.postgres`), and :func:`acpbuild.store.layout.open_ledger` is
the one place that picks and opens one. Every backend passes the contract suite
in ``tests/test_store_contract.py``.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild.keys import Signature
from acpbuild.store import process


@dataclass(frozen=True)
class Cap:
    """A spending cap the ledger enforces across processes: ``usd`` since ``since``."""

    label: str
    usd: float
    since: float


#: the states of a generation that may cost money without being ``done``: counted at their estimate
IN_DOUBT = ("submitted", "possibly_billed")


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: one run, in one process, on one host."""

    run_id: str
    host: str
    pid: int

    @classmethod
    def this_process(cls, run_id: str) -> Owner:
        return cls(run_id, process.HOST, os.getpid())

    def alive(self) -> bool:
        """Whether the owner's process still runs, as far as this host can tell (another host's: yes)."""
        return self.host != process.HOST or process.pid_alive(self.pid)

    def __str__(self) -> str:
        return f"run {self.run_id} on {self.host} (pid {self.pid})"


@dataclass(frozen=True)
class Claim:
    """The answer to :meth:`Ledger.claim`: the key is ours, or a live run holds it."""

    #: the live run holding the key (wait for it), or None: the key is ours
    held_by: Owner | None = None
    #: the step that run is building under it
    step: str | None = None
    #: a dead run whose claim we took over (its job, if it has a request id, is resumable)
    taken_from: Owner | None = None
    #: seconds left of the holder's lease, by the ledger's clock: unrenewed, it lapses then
    lease_left: float | None = None


@dataclass(frozen=True)
class Generation:
    """One attempt to buy a generation; ``state`` is submitted, done, failed, abandoned,
    possibly_billed (sent, answer lost) or received (paid and fetched, not yet stored)."""

    id: int
    key: str
    state: str
    recipe: str | None
    step: str | None
    kind: str | None
    provider: str | None
    model: str | None
    request_id: str | None
    estimated_cost: float | None
    actual_cost: float | None
    digest: str | None
    material: str | None
    usage: str | None
    meta: str | None
    error: str | None
    draft: int
    created: float
    finished: float | None

    @property
    def resumable(self) -> bool:
        """Submitted, with a request id to poll: the job can be waited for instead of bought again."""
        return self.state == "submitted" and self.request_id is not None


def latest(history: list[Generation], state: str) -> Generation | None:
    """The latest generation of ``history`` (latest first) in ``state``, or "resumable"."""
    if state == "resumable":
        return next((g for g in history if g.resumable), None)
    return next((g for g in history if g.state == state), None)


@dataclass(frozen=True)
class OutputRecord:
    """What an output file was last made to hold: its step key and blob digest."""

    path: str
    key: str
    digest: str
    material: str | None
    recipe: str | None
    step: str | None


class Ledger(ABC):
    """The ledger's interface. Methods are safe to call from the run's threads at once.

    Backend errors surface as :class:`~acpbuild.errors.StoreError`.
    """

    # -- claims --------------------------------------------------------------
    @abstractmethod
    def claim(
        self,
        key: str,
        owner: Owner,
        *,
        lease_s: float,
        recipe: str,
        step: str,
        provider: str,
        model: str,
        estimate: float,
    ) -> Claim:
        """Claim ``key`` for ``owner`` for ``lease_s`` seconds, in one transaction.

        Free, or already ``owner``'s: it is ``owner``'s. Held by a live owner (lease
        not run out, and on this host its process alive): ``held_by`` says who,
        and nothing changes. Held by a dead owner: taken over, ``taken_from``
        says whose it was.
        """

    @abstractmethod
    def renew(self, owner: Owner, lease_s: float) -> None:
        """Extend every claim ``owner`` holds to ``lease_s`` seconds from now."""

    @abstractmethod
    def release(self, key: str, owner: Owner) -> None:
        """Give up ``owner``'s claim on ``key`` (nothing happens if it is not ``owner``'s)."""

    @abstractmethod
    def claims(self) -> list[tuple[str, Owner, float, str | None]]:
        """Every claim: (key, owner, lease_until, step)."""

    def held(self, key: str) -> bool:
        """Whether some run holds a claim on ``key`` (live or not)."""
        return any(held == key for held, *_ in self.claims())

    def wait_released(self, key: str, timeout: float) -> None:
        """Block until the claim on ``key`` may have been released, at most ``timeout`` seconds.

        This one asks :meth:`held` every quarter second; a backend that can be
        told when a claim goes (PostgreSQL's LISTEN) wakes at once instead.
        """
        deadline = time.monotonic() + timeout
        while self.held(key):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.25, left))

    # -- generations ---------------------------------------------------------
    @abstractmethod
    def history(self, key: str) -> list[Generation]:
        """Every generation with this key, the latest first, in one query: a step asks
        it once for what :meth:`find_resumable` and :meth:`find_received` would each say."""

    @abstractmethod
    def find_done(self, key: str) -> Generation | None:
        """The latest ``done`` generation with this key, or None."""

    @abstractmethod
    def find_resumable(self, key: str) -> Generation | None:
        """The latest ``submitted`` generation with this key that has a request id to poll, or None."""

    @abstractmethod
    def begin(
        self,
        key: str,
        *,
        recipe: str,
        step: str,
        kind: str,
        provider: str,
        model: str,
        material: str,
        estimated_cost: float | None,
        draft: bool,
        cap: Cap | None = None,
    ) -> int:
        """Record a generation about to be requested (state ``submitted``, no request id); return its id.

        Called by the run holding ``key``'s claim. Earlier ``submitted``
        generations of ``key`` that never got a request id were sent by a run
        that died: they can never be resumed, and may have been billed, so they
        become ``possibly_billed``. With a ``cap``, the
        row goes in only if the spend since ``cap.since`` (as :meth:`spent_since`
        counts it, every process's) leaves room for ``estimated_cost``; else
        :class:`~acpbuild.errors.BudgetExceeded` and nothing is recorded. Check
        and insert are atomic, so two runs sharing the ledger cannot both take
        the last dollar.
        """

    @abstractmethod
    def submitted(self, gen_id: int, request_id: str) -> None:
        """Record the provider's request id for a generation, so a later run can resume it."""

    @abstractmethod
    def finish(
        self,
        gen_id: int,
        *,
        digest: str,
        actual_cost: float | None,
        request_id: str | None,
        usage: dict[str, Any],
        meta: dict[str, Any],
        owner: Owner | None = None,
    ) -> None:
        """Mark a generation ``done`` with its output blob and cost; a None ``request_id`` keeps
        the recorded one. With ``owner``, its claim on the generation's key is released in the
        same transaction."""

    @abstractmethod
    def fail(self, gen_id: int, error: str, *, resumable: bool, billed: bool = False) -> None:
        """Record ``error``; a generation stays ``submitted`` (resumable, e.g. a timeout while
        polling), becomes ``possibly_billed`` (``billed``: sent, answer lost) or ``failed``."""

    @abstractmethod
    def received(
        self, gen_id: int, *, actual_cost: float | None, usage: dict[str, Any], meta: dict[str, Any], error: str
    ) -> None:
        """Mark a generation ``received``: paid and its bytes fetched, but not stored (``error`` says why)."""

    @abstractmethod
    def find_received(self, key: str) -> Generation | None:
        """The latest ``received`` generation with this key, or None."""

    @abstractmethod
    def mark_lost(self, recipe: str) -> int:
        """Paid ``submitted`` generations of ``recipe`` with no request id whose run is gone (no
        live claim on their key) were sent and never answered: make them ``possibly_billed``;
        return how many."""

    @abstractmethod
    def doubts(self, recipe: str, *, unwarned: bool = False) -> list[Generation]:
        """The ``possibly_billed`` generations of ``recipe``; with ``unwarned``, only those no
        run has warned about yet, which are then marked warned."""

    @abstractmethod
    def abandon(self, recipe: str, step: str) -> list[Generation]:
        """Give up every ``submitted`` and ``possibly_billed`` generation of ``step`` (they stop
        counting as spend); return them as they were."""

    @abstractmethod
    def generations(self, *, since: float | None = None) -> list[Generation]:
        """Every generation that finished (or, unfinished, began) at or after ``since``, oldest first."""

    @abstractmethod
    def made_by(self, provider: str, model: str, *, limit: int = 50) -> list[Generation]:
        """The last ``limit`` generations ``model`` of ``provider`` made (state ``done``), newest
        first: what an estimate learns how long a text step's answers run from."""

    @abstractmethod
    def spent_since(self, since: float) -> float:
        """What non-draft generations since ``since`` (a Unix time) cost: ``done`` and
        ``received`` ones that finished since at their actual cost (else their estimate),
        ``submitted`` (running, or kept to resume) and ``possibly_billed`` ones created since
        at their estimate."""

    @abstractmethod
    def restored(self, generation: Generation, *, recipe: str, step: str) -> None:
        """Record that ``generation`` was reused (restored from the store) instead of bought again."""

    @abstractmethod
    def restores(self, *, since: float | None = None) -> list[tuple[Generation, str | None, str | None, float, float]]:
        """Each restore at or after ``since``, oldest first: (the generation reused, recipe, step,
        saved, when); ``saved`` is that generation's actual cost, 0 when unknown."""

    # -- outputs -------------------------------------------------------------
    @abstractmethod
    def output(self, path: Path) -> OutputRecord | None:
        """What the output at ``path`` was last made to hold, or None."""

    @abstractmethod
    def set_output(self, path: Path, *, key: str, digest: str, material: str, recipe: str, step: str) -> None:
        """Record (replacing any earlier record) what the output at ``path`` now holds."""

    @abstractmethod
    def drop_output(self, path: Path) -> None:
        """Forget the output at ``path``; forgetting an unknown one does nothing."""

    @abstractmethod
    def outputs_of(self, recipe: str) -> list[OutputRecord]:
        """Every output recorded for ``recipe``."""

    @abstractmethod
    def outputs_below(self, folder: str) -> list[OutputRecord]:
        """Every output recorded below ``folder``, whichever recipe made it, in one query."""

    # -- file digests ----------------------------------------------------------
    @abstractmethod
    def load_digest(self, path: str) -> tuple[Signature, str] | None:
        """The signature and digest last saved for ``path``, or None."""

    @abstractmethod
    def load_digests(self, folder: str) -> dict[str, tuple[Signature, str]]:
        """:meth:`load_digest` of every path saved below ``folder``, in one query."""

    @abstractmethod
    def save_digest(self, path: str, sig: Signature, digest: str) -> None:
        """Remember that ``path`` with signature ``sig`` hashed to ``digest`` (replacing any earlier)."""

    @contextmanager
    def together(self) -> Iterator[None]:
        """The ledger writes this thread makes inside the block, committed as one transaction
        when it ends (or none of them, if it raises): for a free step's few records, which
        need not be durable one by one. Other threads' calls wait for the block to end, so
        keep it to ledger calls. This one commits each write on its own."""
        yield

    @abstractmethod
    def describe(self) -> str:
        """One line naming the backend, its version and where it is (no password), for ``info``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the ledger is not used afterwards."""
