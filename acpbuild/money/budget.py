"""The run's budget: spending limits and thread-safe reservations against them."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from acpbuild.errors import BudgetExceeded
from acpbuild.store.ledger import Cap

if TYPE_CHECKING:
    from acpbuild.store.ledger import Ledger


class Budget:
    """The run's spending limits, with thread-safe reservations against them.

    ``limits`` maps a label ("the budget of $5 (--budget)") to the dollars it
    still allows this run. Each paid call :meth:`reserve` s its estimate before
    it is made and :meth:`settle` s it with the actual cost after; a reservation
    that would take the committed total past any limit raises
    :class:`~acpbuild.errors.BudgetExceeded` and nothing is reserved. Passing
    80% of a limit adds one line to :attr:`warnings`.
    """

    WARN_AT = 0.8

    def __init__(
        self,
        limits: Mapping[str, float] | None = None,
        *,
        already: Mapping[str, float] | None = None,
        cap: Cap | None = None,
        never_pay: bool = False,
    ) -> None:
        #: the monthly cap, which the ledger checks again as each call begins (other runs spend too)
        self.cap = cap
        #: --frozen: every paid call is refused, whatever the limits
        self.never_pay = never_pay
        #: label -> dollars this run may commit
        self.limits = dict(limits or {})
        #: label -> dollars already spent against the limit's whole (the month so far), for warnings
        self._already = dict(already or {})
        self._totals = {label: self._already.get(label, 0.0) + allowed for label, allowed in self.limits.items()}
        self.reserved: dict[str, float] = {}
        self.spent = 0.0
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return bool(self.limits) or self.never_pay

    @property
    def committed(self) -> float:
        return self.spent + sum(self.reserved.values())

    def room(self) -> float | None:
        """Dollars this run may still commit, or None without a limit."""
        with self._lock:
            return min(self.limits.values()) - self.committed if self.limits else None

    def reserve(self, step: str, usd: float) -> None:
        """Hold ``usd`` for ``step``'s call, or raise BudgetExceeded without holding anything."""
        if self.never_pay:  # whatever its estimate: a paid provider may bill it
            raise BudgetExceeded(
                f"step {step!r} would pay ~${usd:.4f}: --frozen restores and runs free steps but never pays, "
                "so the call was not made",
                usd=usd,
            )
        with self._lock:
            for label, allowed in self.limits.items():
                if self.committed + usd > allowed + 1e-9:
                    left = max(0.0, allowed - self.committed)
                    raise BudgetExceeded(
                        f"step {step!r} would cost ~${usd:.4f} but only ${left:.4f} of {label} is left; "
                        "the call was not made (raise the budget to build it)",
                        usd=usd,
                    )
            self.reserved[step] = self.reserved.get(step, 0.0) + usd
            self._warn()

    def settle(self, step: str, actual: float | None) -> None:
        """Replace ``step``'s reservation with what the call cost (its estimate when unknown)."""
        with self._lock:
            held = self.reserved.pop(step, 0.0)
            self.spent += held if actual is None else actual
            self._warn()

    def release(self, step: str) -> None:
        """Drop ``step``'s reservation: the call failed before anything could be billed."""
        with self._lock:
            self.reserved.pop(step, None)

    def _warn(self) -> None:
        for label in self.limits:
            total = self._totals[label]
            used = self._already.get(label, 0.0) + self.committed
            if label not in self._warned and total > 0 and used >= self.WARN_AT * total:
                self._warned.add(label)
                self.warnings.append(f"this run has committed ${self.committed:.4f}: past 80% of {label}")


def month_start(now: float | None = None) -> float:
    """The Unix time of the first of this month, 00:00 local time."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, -1))


def limits_for(
    budget_usd: float | None,
    ledger: Ledger,
    env: Mapping[str, str],
    budget: float | None = None,
    *,
    frozen: bool = False,
) -> Budget:
    """The limits a run must keep to: ``budget`` (else the recipe's ``budget_usd``) and the
    user's monthly cap, less what the ledger says was spent this month; ``frozen``: no paid call at all.

    Needs no recipe: the fast path of ``plan`` and ``check`` states the limits from the
    manifest of the last run.
    """
    from acpbuild.config.user import load_config

    limits: dict[str, float] = {}
    already: dict[str, float] = {}
    if budget is not None:
        limits[f"the budget of ${budget:g} (--budget)"] = budget
    elif budget_usd is not None:
        limits[f"the budget of ${budget_usd:g} (budget_usd in the recipe)"] = budget_usd
    config = load_config(env)
    cap = None
    if config.monthly_cap_usd is not None:
        since = month_start()
        spent = ledger.spent_since(since)
        label = f"the monthly cap of ${config.monthly_cap_usd:g} ({config.path}; ${spent:.4f} spent this month)"
        limits[label] = max(0.0, config.monthly_cap_usd - spent)
        already[label] = spent
        cap = Cap(f"the monthly cap of ${config.monthly_cap_usd:g} ({config.path})", config.monthly_cap_usd, since)
    return Budget(limits, already=already, cap=cap, never_pay=frozen)


def over_budget(total: float, limits: Mapping[str, float]) -> str | None:
    """Why a plan that would pay ``total`` does not fit ``limits`` (label -> dollars left), or None."""
    for label, allowed in limits.items():
        if total > allowed + 1e-9:
            return f"the plan would pay ~${total:.4f}, more than the ${allowed:.4f} left of {label}"
    return None
