"""Rendering a run for people: a rich live display on a terminal, plain lines elsewhere, and a summary.

The library emits :class:`~acpbuild.engine.results.Event` s from doit's threads; a
:class:`Progress` turns them into output. Only the CLI creates one.

Tables (the run summary, ``plan``, ``estimate``, ``check``, ``costs``) are drawn
with rich on a terminal; elsewhere (CI logs, pipes, files) they are plain lines,
columns aligned with spaces, no box drawing and no colour, so ``grep`` and
``cut`` read them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import IO, Any, Literal

from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from acpbuild.engine.results import Event, RunResult, StepResult
from acpbuild.money.spend import Row
from acpbuild.words import counted

_STYLE = {"ran": "green", "restored": "cyan", "uptodate": "dim", "failed": "bold red", "skipped": "yellow"}


def _terminal(stream: IO[str]) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def _console(stream: IO[str]) -> Any:
    """A rich console on ``stream``; off a terminal (CI logs, pipes) lines are never wrapped or cut."""
    from rich.console import Console

    terminal = _terminal(stream)
    return Console(file=stream, highlight=False, width=None if terminal else 200, soft_wrap=not terminal)


#: a table cell: its text, or its text and a rich style (used on a terminal only)
Cell = str | tuple[str, str]
Justify = Literal["left", "right"]


def _table(stream: IO[str], console: Any, title: str, columns: list[tuple[str, Justify]], rows: list[list[Cell]]) -> None:
    """A table with a title: drawn by rich on a terminal, else plain aligned lines."""
    if _terminal(stream):
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for name, justify in columns:
            table.add_column(name, justify=justify)
        for row in rows:
            table.add_row(*(Text(c) if isinstance(c, str) else Text(c[0], style=c[1]) for c in row))
        console.print(table)
        return
    texts = [[(c if isinstance(c, str) else c[0]).replace("\n", " ") for c in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in texts)]) for i, (name, _) in enumerate(columns)]

    def line(cells: list[str]) -> str:
        fitted = (
            cell.rjust(width) if justify == "right" else cell.ljust(width)
            for cell, width, (_, justify) in zip(cells, widths, columns, strict=True)
        )
        return "  ".join(fitted).rstrip()

    stream.write("\n".join([title, line([name for name, _ in columns]), *map(line, texts)]) + "\n")


def _money(value: float) -> str:
    return f"${value:,.4f}" if value else "$0"


class _RunBar(ProgressColumn):
    """The bar, drawn on the run's row only: a running step's row shows its name and time."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = BarColumn()

    def render(self, task: Task) -> Any:
        return Text() if task.fields.get("step") else self._bar.render(task)


class Progress:
    """Shows steps done of total and each running step with its elapsed time.

    On a terminal a rich progress display redraws itself on its own thread, so
    a step's time ticks while its provider call runs; elsewhere (CI logs,
    pipes) it prints one plain line per step that did something. Events arrive
    from doit's threads, several at once.
    """

    def __init__(self, stream: IO[str], *, live: bool) -> None:
        from rich.console import Console

        self.console = Console(file=stream, force_terminal=live or None, highlight=False, width=None if live else 200)
        self._stream = stream
        self.total = 0
        self.done = 0
        self._lock = threading.RLock()
        self._bar: RichProgress | None = None
        if live:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                _RunBar(),
                TimeElapsedColumn(),
                console=self.console,
                refresh_per_second=8,
                transient=True,
            )
        self._run: TaskID | None = None
        self._running: dict[str, TaskID] = {}

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.kind == "start":
                self.total = event.total
                if self._bar is not None and self._run is None:
                    # a total of 0 would divide by zero in rich's bar; None draws it pulsing
                    self._run = self._bar.add_task(self._counted(), total=event.total or None)
                    self._bar.start()
            elif event.kind == "step_start" and event.step:
                if self._bar is not None:
                    self._running[event.step] = self._bar.add_task(f"  {_escape(event.step)}", total=None, step=True)
            elif event.kind == "step_done" and event.step:
                self.done += 1
                row = self._running.pop(event.step, None)
                if self._bar is not None:
                    if row is not None:
                        self._bar.remove_task(row)
                    if self._run is not None:
                        self._bar.update(self._run, completed=self.done, description=self._counted())
                    self._bar.refresh()  # now, so the line printed below sits above the new count
                if event.result is not None and event.result.status != "uptodate":
                    if self._bar is None:
                        self._write(_finished(event.result, styled=False))
                    else:
                        self.console.print(_finished(event.result))
            elif event.kind == "warning":
                self._say(f"[yellow] warning[/] {_escape(event.message)}", f" warning {event.message}")
            elif event.kind == "waiting" and event.step:
                self._say(
                    f"[cyan] waiting[/] {_escape(event.step)} [dim]({_escape(event.message)})[/]",
                    f" waiting {event.step} ({event.message})",
                )
            elif event.kind == "finish":
                self.stop()

    def _say(self, styled: str, plain: str) -> None:
        if self._bar is None:
            self._write(plain)
        else:
            self.console.print(styled)

    def _write(self, line: str) -> None:
        """A plain line as it is (no markup to parse: a first build prints thousands), at once."""
        self._stream.write(line + "\n")
        self._stream.flush()

    def stop(self) -> None:
        """Clear the live display; later output starts where it stood. Safe to call twice."""
        with self._lock:
            if self._bar is not None and self._bar.live.is_started:
                self._bar.stop()

    def __rich__(self) -> Any:
        """The live display as it stands now (empty off a terminal)."""
        return self._bar.get_renderable() if self._bar is not None else Text()

    def _counted(self) -> str:
        return f"[bold]{self.done}/{self.total}[/] steps"


def _finished(result: StepResult, *, styled: bool = True) -> str:
    """The line printed when a step that did something finishes: rich markup, or plain text."""
    mark = _escape if styled else str

    def style(text: str, name: str) -> str:
        return f"[{name}]{text}[/]" if styled else text

    line = f"{style(f'{result.status:>8}', _STYLE[result.status])} {mark(result.name)}"
    if result.status == "ran" and result.reason:
        line += " " + style(f"({mark(result.reason)})", "dim")
    if result.cost:
        line += f" {_money(result.cost)}"
    if result.error:
        line += "\n         " + style(mark(result.error), "red")
    elif result.status == "skipped":
        line += " " + style(f"({mark(result.reason)})", "dim")
    return line


def _rel(path: str) -> str:
    import os

    rel = os.path.relpath(path)
    return path if rel.startswith("../..") else rel


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def summary(result: RunResult, stream: IO[str], *, seconds: float) -> None:
    """The table printed at the end of a run."""
    console = _console(stream)
    rows: list[list[Cell]] = []
    # Steps that did nothing are counted below, not listed: a content repo has thousands.
    for step in (s for s in result.steps.values() if s.status != "uptodate"):
        output = ", ".join(_rel(o) for o in step.outputs) if step.status not in ("failed", "skipped") else (step.error or step.reason)
        rows.append(
            [
                step.name,
                (step.status, _STYLE[step.status]),
                f"{step.provider}/{step.model}",
                _money(step.estimated_cost),
                _money(step.cost),
                output or "",
            ]
        )
    if rows:
        columns: list[tuple[str, Justify]] = [
            ("step", "left"),
            ("status", "left"),
            ("provider/model", "left"),
            ("estimate", "right"),
            ("cost", "right"),
            ("output", "left"),
        ]
        _table(stream, console, f"acpbuild run: {result.recipe}", columns, rows)
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("ran", "restored", "uptodate", "failed", "skipped") if result.count(s))
    verdict = "[green]ok[/]" if result.success else "[bold red]FAILED[/]"
    verdict = "[bold red]REFUSED[/]" if result.refused else verdict
    doubt = f"; possibly billed {_money(result.possibly_billed)}" if result.possibly_billed else ""
    console.print(
        f"{verdict}: {counts}; paid {_money(result.total_cost)} (estimated {_money(result.estimated_cost)}){doubt}; "
        f"{seconds:.1f}s"
    )
    for warning in result.warnings:
        console.print(f"[yellow]warning[/]: {_escape(warning)}")
    if result.refused and result.frozen:
        console.print(
            f"[bold red]frozen[/]: {', '.join(result.refused)} not run: each would have been bought, and --frozen "
            "never pays; run without --frozen to buy them"
        )
    elif result.refused:
        console.print(
            f"[bold red]budget[/]: {', '.join(result.refused)} not run, their calls would have crossed the budget; "
            "raise it (--budget or budget_usd) and run again"
        )
    if result.drafted:
        console.print(
            f"[yellow]DRAFT[/]: {counted(len(result.drafted), 'paid step')} replaced by free local stand-ins "
            f"({', '.join(result.drafted)}); a run without --draft will generate them for real"
        )
    for error in result.errors:
        console.print(f"[red]{_escape(error)}[/]")


def plan_table(forecast: Mapping[str, Any], stream: IO[str], *, detailed: bool = False, title: str = "plan") -> None:
    """The plan (``Plan.to_dict()``): each step's state, why, and what a run would pay for it now."""
    console = _console(stream)
    entries = forecast["steps"]
    columns: list[tuple[str, Justify]] = [("step", "left"), ("state", "left"), ("why", "left"), ("estimate", "right")]
    if detailed:
        columns.append(("how", "left"))
    styles = {"uptodate": "dim", "restorable": "cyan", "run": "green"}
    labels = {"uptodate": "up to date", "restorable": "restorable", "run": "will run"}
    rows: list[list[Cell]] = []
    for entry in entries:
        state, guess = entry["status"], entry["guess"]
        row: list[Cell] = [
            entry["name"],
            (labels[state], styles[state]),
            entry["reason"],
            _expected(entry["estimated_cost"], entry["at_most"], guessed=bool(guess)),
        ]
        if detailed:
            how = entry["formula"] if state == "run" else entry["reason"]
            row.append(how + (f" [{guess}]" if guess and state == "run" else ""))
        rows.append(row)
    _table(stream, console, f"acpbuild {title}: {forecast['recipe']}", columns, rows)
    totals = forecast["totals"]
    runs, restores = totals["run"], totals["restorable"]
    console.print(f"{runs} will run, {restores} restorable from the store, {len(entries) - runs - restores} up to date")
    guessed = any(e["guess"] and e["estimated_cost"] for e in entries)
    figure = _expected(totals["estimated"], totals["at_most"], guessed=guessed)
    console.print(f"a run now would pay {figure}" + (" (~: a guess, see --detailed)" if guessed else ""))
    if totals["worst_case"] > totals["at_most"] + 1e-9:
        console.print(f"up to {_money(totals['worst_case'])} if every first_success fallback has to run")
    for label, allowed in forecast["limits"].items():
        console.print(f"[dim]{_escape(label)}: ${allowed:.4f} left[/]")
    over = forecast["over_budget"]
    if over:
        console.print(f"[bold red]over budget[/]: {_escape(over)}")


def _expected(usd: float, at_most: float, *, guessed: bool) -> str:
    """An estimate as shown: ``~$0.31 (at most $1.94)`` where it is a guess below its bound."""
    shown = ("~" if guessed else "") + _money(usd)
    return shown + (f" (at most {_money(at_most)})" if at_most > usd + 5e-5 else "")


def costs_table(rows: list[Row], by: str, stream: IO[str]) -> None:
    """Spend from the ledger, one row per group."""
    console = _console(stream)
    doubt = any(r.in_doubt for r in rows)
    names = (by, "bought", "estimated", "cost", *(("possibly billed",) if doubt else ()), "restores", "saved")
    columns: list[tuple[str, Justify]] = [(name, "left" if name == by else "right") for name in names]
    cells: list[list[Cell]] = []
    for row in rows:
        cell: list[Cell] = [row.group, str(row.generations), _money(row.estimated), _money(row.cost)]
        if doubt:
            cell.append(f"{_money(row.possibly_billed)} ({row.in_doubt})" if row.in_doubt else "")
        cells.append([*cell, str(row.restores), _money(row.saved)])
    _table(stream, console, f"acpbuild costs by {by}", columns, cells)
    spent, saved = sum(r.cost for r in rows), sum(r.saved for r in rows)
    line = f"spent {_money(spent)}; restores saved {_money(saved)}"
    if doubt:
        line += (
            f"; possibly billed {_money(sum(r.possibly_billed for r in rows))} more: requests sent but never "
            "answered, or jobs still running or kept to resume (at their estimates)"
        )
    console.print(line)
