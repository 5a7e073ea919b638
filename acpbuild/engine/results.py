"""What a run reports: a step's result, the events a run emits as it goes, and the run's result.

The library never prints: a caller's ``on_event`` receives :class:`Event` s
(the CLI draws them), and :func:`~acpbuild.engine.workflow.run` returns a
:class:`RunResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from acpbuild.errors import BudgetExceeded

Status = Literal["ran", "restored", "uptodate", "failed", "skipped"]


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
    #: what a request that was sent but whose answer was lost may have cost (at its estimate)
    possibly_billed: float = 0.0

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
            **({"possibly_billed": round(self.possibly_billed, 6)} if self.possibly_billed else {}),
            **({"group": self.group} if self.group else {}),
        }


@dataclass
class Event:
    """Something a run reports as it goes; the CLI renders these."""

    kind: Literal["start", "step_start", "step_done", "waiting", "warning", "finish"]
    step: str | None = None
    result: StepResult | None = None
    total: int = 0
    message: str = ""


@dataclass
class RunResult:
    """The outcome of :func:`run`."""

    recipe: str
    steps: dict[str, StepResult]
    total_cost: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: steps a ``draft`` run replaced with local stand-ins
    drafted: list[str] = field(default_factory=list)
    #: what the steps that ran were expected to cost
    estimated_cost: float = 0.0
    #: budget warnings (80% of the budget or of the monthly cap passed)
    warnings: list[str] = field(default_factory=list)
    #: a --frozen run: refused steps were refused because they would have paid at all
    frozen: bool = False

    @property
    def success(self) -> bool:
        return not self.failed and not self.errors

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.steps.items() if r.status == "failed" and not r.fallback]

    @property
    def outputs(self) -> dict[str, list[str]]:
        return {n: r.outputs for n, r in self.steps.items() if r.status not in ("failed", "skipped")}

    @property
    def refused(self) -> list[str]:
        """Steps that failed because their call would have crossed the budget."""
        return [n for n, r in self.steps.items() if r.refused and not r.fallback]

    @property
    def exit_code(self) -> int:
        """0 success, 3 a call was refused for the budget, 1 another failure."""
        if self.refused:
            return BudgetExceeded.exit_code
        return 0 if self.success else 1

    @property
    def possibly_billed(self) -> float:
        """What requests of this run that were sent but lost their answer may have cost."""
        return sum(r.possibly_billed for r in self.steps.values())

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
                "estimated": round(self.estimated_cost, 6),
                "possibly_billed": round(self.possibly_billed, 6),
            },
            "errors": self.errors,
            "warnings": self.warnings,
            "refused": self.refused,
            "frozen": self.frozen,
            "draft": bool(self.drafted),
            "drafted": self.drafted,
        }
