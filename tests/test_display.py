"""The run display: a live progress display on a terminal, plain lines elsewhere.

The terminal is a StringIO behind a console forced into terminal mode, so what
rich draws (escape codes and all) can be read back.
"""

from __future__ import annotations

import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rich.console import Console

from acpbuild.cli.display import Progress
from acpbuild.engine.results import Event, StepResult

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _step_times(screen: io.StringIO, step: str) -> list[int]:
    """Every elapsed time, in seconds, drawn so far on the row of a running ``step``."""
    text = _ANSI.sub("", screen.getvalue())
    row = re.compile(rf"^\s*{re.escape(step)}\s+(\d+):(\d\d):(\d\d)\s*$")
    found = (row.match(line) for line in re.split(r"[\r\n]", text))
    return [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (f.groups() for f in found if f)]


def _frame(progress: Progress) -> str:
    """The live display as it stands, as plain text."""
    console = Console(file=io.StringIO(), width=100, color_system=None)
    with console.capture() as capture:
        console.print(progress)
    return capture.get()


def test_a_running_steps_time_ticks_while_no_event_arrives() -> None:
    screen = io.StringIO()
    progress = Progress(screen, live=True)
    progress(Event("start", total=1))
    progress(Event("step_start", step="cover"))
    first = _step_times(screen, "cover")
    assert first, "the step's row is drawn as soon as it starts"
    # No more events: only the display's own refresh can draw a later time.
    # The wait is usually ~1 s; the deadline is there for a loaded machine.
    deadline = time.monotonic() + 10
    while max(_step_times(screen, "cover")) <= first[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert max(_step_times(screen, "cover")) > first[0]
    progress(Event("finish"))


def test_a_finished_step_is_printed_and_its_row_removed() -> None:
    screen = io.StringIO()
    progress = Progress(screen, live=True)
    progress(Event("start", total=2))
    progress(Event("step_start", step="cover"))
    progress(Event("step_start", step="clip"))
    frame = _frame(progress)
    assert frame.startswith("0/2 steps")
    assert re.search(r"^  cover\s+0:00:0\d$", frame, re.MULTILINE)
    assert re.search(r"^  clip\s+0:00:0\d$", frame, re.MULTILINE)

    progress(Event("step_done", step="cover", result=StepResult("cover", "ran", cost=0.04, reason="never built")))
    frame = _frame(progress)
    assert frame.startswith("1/2 steps")
    assert "clip" in frame and "cover" not in frame
    shown = screen.getvalue()
    assert "\x1b[32m     ran\x1b[0m cover" in shown  # styled for a terminal
    assert "\x1b[1m1/2\x1b[0m steps" in shown  # the run's row, redrawn in place
    assert "     ran cover (never built) $0.0400" in _ANSI.sub("", shown)

    progress(Event("finish"))
    after = screen.getvalue()
    progress.stop()  # the CLI stops it again when the run returns: nothing more is drawn
    assert screen.getvalue() == after


def test_off_a_terminal_each_step_is_one_plain_line() -> None:
    screen = io.StringIO()
    progress = Progress(screen, live=False)
    progress(Event("warning", message="a [bold] warning"))
    progress(Event("start", total=5))
    progress(Event("step_start", step="cover"))
    progress(Event("step_done", step="cover", result=StepResult("cover", "ran", cost=0.04, reason="never built")))
    progress(Event("step_done", step="voice", result=StepResult("voice", "uptodate", reason="up to date")))
    progress(Event("step_done", step="clip", result=StepResult("clip", "failed", error="boom [x]")))
    progress(Event("step_done", step="final", result=StepResult("final", "skipped", reason="needs clip, which failed")))
    progress(Event("step_done", step="script", result=StepResult("script", "restored", reason="in the store")))
    progress(Event("finish"))
    progress.stop()
    assert screen.getvalue() == (
        " warning a [bold] warning\n"
        "     ran cover (never built) $0.0400\n"
        "  failed clip\n"
        "         boom [x]\n"
        " skipped final (needs clip, which failed)\n"
        "restored script\n"
    )
    assert _frame(progress) == "\n"  # no live display to draw


@pytest.mark.parametrize("live", [True, False])
def test_events_from_many_threads_at_once(live: bool) -> None:
    screen = io.StringIO()
    progress = Progress(screen, live=live)
    names = [f"clip{i}" for i in range(200)]
    progress(Event("start", total=len(names)))

    def step(name: str) -> None:
        progress(Event("step_start", step=name))
        if name.endswith("7"):
            progress(Event("warning", message=f"{name} is slow"))
        progress(Event("step_done", step=name, result=StepResult(name, "ran", reason="never built")))

    with ThreadPoolExecutor(max_workers=16) as pool:
        for future in [pool.submit(step, name) for name in names]:
            future.result()  # re-raises whatever the display raised in that thread
    if live:
        assert _frame(progress).startswith(f"{len(names)}/{len(names)} steps")
        assert "clip" not in _frame(progress)  # every row removed
    progress(Event("finish"))
    shown = _ANSI.sub("", screen.getvalue())
    assert progress.done == len(names)
    assert all(f"ran {name} (never built)" in shown for name in names)
    assert shown.count("is slow") == 20


# --- tables off a terminal: plain lines, as the README promises ------------------------

_BOX = re.compile("[\u2500-\u257f]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _plain(text: str) -> None:
    """``text`` is plain lines: no box drawing, no escape codes, no trailing blanks."""
    assert not _BOX.search(text), text
    assert "\x1b[" not in text, text
    assert all(line == line.rstrip() for line in text.splitlines()), text


def test_plan_run_and_costs_print_plain_lines_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acpbuild.cli import main

    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text('[steps.hello]\nkind = "text"\nprompt = "hello"\noutput = "hello.txt"\n')
    assert main(["plan", str(recipe), "--detailed"]) == 0
    out = capsys.readouterr().out
    _plain(out)
    lines = out.splitlines()
    assert lines[0] == "acpbuild plan: acpbuild"
    assert lines[1].split() == ["step", "state", "why", "estimate", "how"]
    assert lines[2].split()[:4] == ["hello", "will", "run", "never"]
    assert main(["run", str(recipe)]) == 0
    out = capsys.readouterr().out
    _plain(out)
    assert "\nstep   status  provider/model  estimate  cost  output\n" in out
    assert main(["costs", str(recipe), "--by", "step"]) == 0
    out = capsys.readouterr().out
    _plain(out)
    assert out.splitlines()[1].split() == ["step", "bought", "estimated", "cost", "restores", "saved"]
    assert out.splitlines()[2].split() == ["acpbuild:hello", "1", "$0", "$0", "0", "$0"]


def test_tables_on_a_terminal_are_drawn(tmp_path: Path) -> None:
    from acpbuild.cli import display
    from acpbuild.money.spend import Row

    screen = _Terminal()
    display.costs_table([Row("promo", generations=1, cost=0.5)], "recipe", screen)
    assert _BOX.search(screen.getvalue())  # rich's rules: a terminal is for people
