"""Build a recipe from Python and print its progress from the events acpbuild emits.

    python run_with_events.py [RECIPE]

RECIPE defaults to recipe.toml beside this script; its outputs land where the
recipe says (``output_dir``, relative to the recipe). The script exits with the
code the ``acpbuild run`` command would: 0 when every step is built.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import acpbuild


class Progress:
    """An ``on_event`` callback that prints one line per event.

    Steps that do not depend on each other run at the same time, so events can
    arrive from several threads at once: the lock keeps lines and the count whole.
    """

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if event.kind == "start":
                self.total = event.total
                print(f"start: {event.total} steps to check")
            elif event.kind == "step_start":
                print(f"       {event.step} ...")
            elif event.kind == "step_done":
                self.done += 1
                result = event.result
                if result is None:  # nothing recorded for it: say so rather than guess
                    print(f"[{self.done}/{self.total}] {event.step}: done")
                else:
                    why = result.error or result.reason
                    print(
                        f"[{self.done}/{self.total}] {event.step}: {result.status}, ${result.cost:.4f} ({why})"
                    )
            elif event.kind == "warning":
                print(f"warning: {event.message}")
            elif event.kind == "finish":
                print(f"finish: {self.done} of {self.total} steps done")
            sys.stdout.flush()


def main(argv: list[str]) -> int:
    recipe = Path(argv[0]) if argv else Path(__file__).with_name("recipe.toml")
    try:
        result = acpbuild.run(recipe, on_event=Progress())
    except acpbuild.RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(
        f"{result.count(s)} {s}" for s in ("ran", "restored", "uptodate", "failed", "skipped")
    )
    print(f"summary: {counts}; paid ${result.total_cost:.4f}")
    for step, paths in result.outputs.items():
        for path in paths:
            print(f"  {step}: {path}")
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
