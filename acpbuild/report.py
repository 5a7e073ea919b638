"""Rendering a run for people: a rich live display on a terminal, plain lines elsewhere, and a summary.

The library emits :class:`~acpbuild.build.Event` s from doit's threads; a
:class:`Progress` turns them into output. Only the CLI creates one.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from acpbuild.build import Assessment, Event
from acpbuild.workflow import RunResult

_STYLE = {"ran": "green", "restored": "cyan", "uptodate": "dim", "failed": "bold red", "skipped": "yellow"}


def _money(value: float) -> str:
    return f"${value:,.4f}" if value else "$0"


class Progress:
    """Shows steps done of total, what is running now, and elapsed time."""

    def __init__(self, stream: IO[str], *, live: bool) -> None:
        from rich.console import Console

        self.console = Console(file=stream, force_terminal=live or None, highlight=False)
        self.live_enabled = live
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live: Any = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.kind == "start":
                self.total = event.total
                self.started = time.monotonic()
                if self.live_enabled:
                    from rich.live import Live

                    self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
                    self._live.start()
            elif event.kind == "step_start" and event.step:
                self.running[event.step] = time.monotonic()
            elif event.kind == "step_done" and event.step:
                self.running.pop(event.step, None)
                self.done += 1
                result = event.result
                if result is not None and result.status != "uptodate":
                    line = f"[{_STYLE[result.status]}]{result.status:>8}[/] {result.name}"
                    if result.status == "ran" and result.reason:
                        line += f" [dim]({result.reason})[/]"
                    if result.cost:
                        line += f" {_money(result.cost)}"
                    if result.error:
                        line += f"\n         [red]{_escape(result.error)}[/]"
                    elif result.status == "skipped":
                        line += f" [dim]({result.reason})[/]"
                    self.console.print(line)
            elif event.kind == "finish":
                self.stop()
                return
            if self._live is not None:
                self._live.update(self._render())

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self) -> Any:
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        now = ", ".join(sorted(self.running)) or "-"
        return Text.from_markup(f"[bold]{self.done}/{self.total}[/] steps  running: {now}  [dim]{elapsed:5.1f}s[/]")


def _rel(path: str) -> str:
    import os

    rel = os.path.relpath(path)
    return path if rel.startswith("../..") else rel


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def summary(result: RunResult, stream: IO[str], *, seconds: float) -> None:
    """The table printed at the end of a run."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False)
    table = Table(title=f"acpbuild run: {result.recipe}", title_justify="left")
    for column in ("step", "status", "provider/model", "cost", "output"):
        table.add_column(column, justify="right" if column == "cost" else "left")
    for step in result.steps.values():
        output = ", ".join(_rel(o) for o in step.outputs) if step.status not in ("failed", "skipped") else (step.error or step.reason)
        table.add_row(
            step.name,
            f"[{_STYLE[step.status]}]{step.status}[/]",
            f"{step.provider}/{step.model}",
            _money(step.cost),
            _escape(output or ""),
        )
    console.print(table)
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("ran", "restored", "uptodate", "failed", "skipped") if result.count(s))
    verdict = "[green]ok[/]" if result.success else "[bold red]FAILED[/]"
    console.print(f"{verdict}: {counts}; paid {_money(result.total_cost)}; {seconds:.1f}s")
    if result.drafted:
        console.print(
            f"[yellow]DRAFT[/]: {len(result.drafted)} paid steps replaced by free local stand-ins "
            f"({', '.join(result.drafted)}); a run without --draft will generate them for real"
        )
    for error in result.errors:
        console.print(f"[red]{_escape(error)}[/]")


def plan_table(name: str, entries: list[Assessment], stream: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False)
    table = Table(title=f"acpbuild plan: {name}", title_justify="left")
    for column in ("step", "state", "why"):
        table.add_column(column)
    styles = {"uptodate": "dim", "restorable": "cyan", "run": "green"}
    labels = {"uptodate": "up to date", "restorable": "restorable", "run": "will run"}
    for entry in entries:
        table.add_row(entry.name, f"[{styles[entry.state]}]{labels[entry.state]}[/]", _escape(entry.reason))
    console.print(table)
    runs = sum(1 for e in entries if e.state == "run")
    restores = sum(1 for e in entries if e.state == "restorable")
    console.print(f"{runs} will run, {restores} restorable from the store, {len(entries) - runs - restores} up to date")
