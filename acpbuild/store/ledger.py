"""The ledger: the record of every generation, what each output holds, and file digests.

A generation's row is written before the provider is called (state
``submitted``), gets the provider's request id the moment the provider has one,
and turns ``done`` the moment its result is in the store: each write is
durable (and visible to every other process sharing the ledger) when the method
returns, so a crash never forgets a paid result, and a rerun finds a
``submitted`` row with a request id and resumes that job instead of paying again.

:class:`Ledger` is the interface; a backend implements it (SQLite in
:mod:`acpbuild.store.sqlite`), and :func:`acpbuild.store.layout.open_ledger` is
the one place that picks and opens one. Every backend passes the contract suite
in ``tests/test_store_contract.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild.keys import Signature


@dataclass(frozen=True)
class Cap:
    """A spending cap the ledger enforces across processes: ``usd`` since ``since``."""

    label: str
    usd: float
    since: float


@dataclass(frozen=True)
class Generation:
    """One attempt to buy a generation; ``state`` is submitted, done, failed or abandoned."""

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

    # -- generations ---------------------------------------------------------
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

        Earlier ``submitted`` generations of ``key`` that never got a request id
        can never be resumed: they become ``abandoned``. With a ``cap``, the
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
    ) -> None:
        """Mark a generation ``done`` with its output blob and cost; a None ``request_id`` keeps the recorded one."""

    @abstractmethod
    def fail(self, gen_id: int, error: str, *, resumable: bool) -> None:
        """Record ``error``; a generation stays ``submitted`` (resumable, e.g. a timeout while
        polling) or becomes ``failed`` with a finish time."""

    @abstractmethod
    def abandon(self, recipe: str, step: str) -> list[str]:
        """Give up every ``submitted`` generation of ``step``; return the request ids they had."""

    @abstractmethod
    def generations(self, *, since: float | None = None) -> list[Generation]:
        """Every generation that finished (or, unfinished, began) at or after ``since``, oldest first."""

    @abstractmethod
    def spent_since(self, since: float) -> float:
        """What non-draft generations since ``since`` (a Unix time) cost: ``done`` ones that
        finished since at their actual cost (else their estimate), ``submitted`` ones created
        since (running, or kept to resume) at their estimate."""

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

    # -- file digests ----------------------------------------------------------
    @abstractmethod
    def load_digest(self, path: str) -> tuple[Signature, str] | None:
        """The signature and digest last saved for ``path``, or None."""

    @abstractmethod
    def save_digest(self, path: str, sig: Signature, digest: str) -> None:
        """Remember that ``path`` with signature ``sig`` hashed to ``digest`` (replacing any earlier)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the ledger is not used afterwards."""
