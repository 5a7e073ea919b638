"""Never pay twice when runs overlap or crash: real `acpbuild run` processes, the real SDKs,
the loopback emulators counting what they bill.

Each scenario repeats its trial 20 times, each in a fresh project: several runs of
one recipe started together, two started a random 0-3 s apart, two recipes sharing
one store, and runs killed with SIGKILL while requests are in flight. Every trial
asserts that the providers were paid once per distinct generation, that every run
exited 0, and (after a crash) that `acpbuild costs` reports no less than what the
providers billed. Run with `-s` to see each scenario's totals.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import Request, Response
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import FalEmulator
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator

ROOT = Path(__file__).resolve().parent.parent
TRIALS = int(os.environ.get("ACPBUILD_TRIALS", "20"))
#: how long the emulated OpenRouter takes to answer: long enough for runs to overlap
LATENCY_S = 0.3

pytestmark = pytest.mark.slow


class SlowOpenRouter(OpenRouterEmulator):
    def _chat(self, request: Request, match: Any) -> Response:
        time.sleep(LATENCY_S)
        return super()._chat(request, match)


def _recipe(name: str, texts: range, images: range, *, card: bool = True) -> str:
    """A recipe of paid generations: OpenRouter texts (synchronous) and fal images (queued),
    independent of one another, and a free local step that needs one of each."""
    parts = [f'[recipe]\nname = "{name}"\noutput_dir = "out-{name}"\n']
    for i in texts:
        parts.append(
            f'[steps.line{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
            f'prompt = "Line {i} of a poem about the sea."\nmax_tokens = 40\noutput = "line{i}.txt"\n'
        )
    for i in images:
        parts.append(
            f'[steps.picture{i}]\nkind = "text_to_image"\nprovider = "fal"\nmodel = "flux-schnell"\n'
            f'prompt = "picture {i} of the sea"\nimage_size = "square"\noutput = "picture{i}.png"\n'
        )
    if not card:
        return "\n".join(parts)
    parts.append(
        f'[steps.card]\nkind = "image_to_image"\nimage = "${{steps.picture{images[0]}}}"\n'
        f'prompt = "${{steps.line{texts[0]}}}"\noutput = "card.png"\n'
    )
    return "\n".join(parts)


#: 12 paid generations: 8 texts and 4 images
ONE = _recipe("one", range(8), range(4))
#: a second recipe sharing 7 of them (5 texts, 2 images) and adding 5 of its own
TWO = _recipe("two", range(3, 11), range(2, 6))


@dataclass
class Providers:
    fal: FalEmulator
    openrouter: SlowOpenRouter
    env: dict[str, str]

    def paid(self) -> int:
        return self.fal.submissions + self.openrouter.submissions

    def reset(self) -> None:
        self.fal.reset()
        self.openrouter.reset()
        self.openrouter.costs.clear()


@pytest.fixture(scope="module")
def providers() -> Iterator[Providers]:
    with FalEmulator() as fal, SlowOpenRouter() as orr:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            "FAL_KEY": FAL_KEY,
            "OPENROUTER_API_KEY": OPENROUTER_KEY,
            "ACPBUILD_FAL_URL": fal.url,
            "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1",
            "ACPBUILD_RETRY_BASE_S": "0.01",
            "ACPBUILD_POLL_INTERVAL_S": "0.05",
            "ACPBUILD_CONFIG": os.devnull,
            "ACPBUILD_NO_FASTPATH": "1",
        }
        env.pop("ACPBUILD_STORE", None)
        yield Providers(fal, orr, env)


def _start(recipe: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "acpbuild", "run", str(recipe), "--yes"],
        cwd=recipe.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(run: subprocess.Popen[str]) -> None:
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, out[-2000:] + err[-2000:]
    assert "database is locked" not in out + err


def _distinct(recipes: list[str]) -> int:
    """The paid generations the recipes need, counted once each (same step text: same generation)."""
    import tomli

    paid = set()
    for text in recipes:
        for step in tomli.loads(text)["steps"].values():
            if step.get("provider") in ("fal", "openrouter"):
                paid.add(json.dumps({k: v for k, v in step.items() if k != "output"}, sort_keys=True))
    return len(paid)


# (what starts, and when; what it proves)
SCENARIOS = {
    "2 together": ([ONE, ONE], 0.0),  # two terminals, one recipe
    "4 together": ([ONE, ONE, ONE, ONE], 0.0),  # a crowd of them
    "2 staggered 0-3 s": ([ONE, ONE], 3.0),  # the second starts while the first is anywhere
    "2 recipes, 1 store": ([ONE, TWO], 0.0),  # shared generations through ACPBUILD_STORE
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_overlapping_runs_pay_once_per_generation(providers: Providers, tmp_path: Path, scenario: str) -> None:
    texts, stagger = SCENARIOS[scenario]
    rng = random.Random(scenario)
    distinct = _distinct(texts)
    paid_total = 0
    for trial in range(TRIALS):
        project = tmp_path / f"trial{trial}"
        project.mkdir()
        env = {**providers.env, "ACPBUILD_STORE": str(project / "store")}
        before = providers.paid()
        recipes = []
        for n, text in enumerate(texts):
            recipe = project / f"recipe{n}.toml"
            recipe.write_text(text)
            recipes.append(recipe)
        runs = []
        for n, recipe in enumerate(recipes):
            if n and stagger:
                time.sleep(rng.uniform(0, stagger))
            runs.append(_start(recipe, env))
        for run in runs:
            _finish(run)
        paid = providers.paid() - before
        paid_total += paid
        assert paid == distinct, f"trial {trial}: paid {paid} for {distinct} generations"
        for recipe, text in zip(recipes, texts, strict=True):
            name = "one" if text is ONE else "two"
            assert (project / f"out-{name}" / "card.png").stat().st_size > 0
    print(f"\n{scenario}: {TRIALS} trials, paid {paid_total} for {TRIALS * distinct} distinct generations")


def _costs(recipe: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "acpbuild", "costs", str(recipe), "--json"],
        cwd=recipe.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, Any] = json.loads(done.stdout)["totals"]
    return totals


def test_a_run_killed_with_requests_in_flight_never_hides_what_was_billed(
    providers: Providers, tmp_path: Path
) -> None:
    # OpenRouter bills each answered request its usage.cost; the emulator keeps the list
    texts_only = _recipe("one", range(12), range(0), card=False)
    rng = random.Random(9)
    rows = []
    for trial in range(TRIALS):
        providers.reset()
        project = tmp_path / f"trial{trial}"
        project.mkdir()
        recipe = project / "recipe.toml"
        recipe.write_text(texts_only)
        env = {**providers.env, "ACPBUILD_STORE": str(project / "store")}
        run = subprocess.Popen(
            [sys.executable, "-m", "acpbuild", "run", str(recipe), "--yes", "-j", "4"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # kill it once requests are in flight: somewhere in its first few answers
        deadline = time.monotonic() + 60
        while not providers.openrouter.submissions and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 3 * LATENCY_S))
        run.send_signal(signal.SIGKILL)
        run.wait()
        time.sleep(2 * LATENCY_S)  # the requests it left in flight are answered, and billed
        _finish(_start(recipe, env))
        billed = sum(providers.openrouter.costs)
        totals = _costs(recipe, env)
        reported = totals["cost"] + totals["possibly_billed"]
        rows.append((providers.openrouter.submissions, billed, totals["cost"], totals["possibly_billed"]))
        assert reported >= billed - 1e-9, f"trial {trial}: billed {billed}, acpbuild reports {reported}"
        for i in range(12):
            assert (project / "out-one" / f"line{i}.txt").read_text().strip()
    print(f"\nkill -9: {TRIALS} trials, requests / billed / cost + possibly billed:")
    for requests, billed, cost, doubt in rows:
        print(f"  {requests:3d} requests  billed ${billed:.8f}  reported ${cost:.8f} + ${doubt:.8f}")
