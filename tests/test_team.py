"""Two machines, one team: a shared PostgreSQL ledger and S3 store, on the wire.

Each "machine" is a clone of one content repo in its own directory, with its
own local store (``.acpbuild`` beside the recipe). They share a throwaway
PostgreSQL cluster (``ACPBUILD_LEDGER``) and a bucket on a real S3-protocol
server (``ACPBUILD_REMOTE``), and pay the provider emulators, which count what
they bill. Every command is a real ``acpbuild`` process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import Request, Response
from tests.emulators.fal import KEY as FAL_KEY
from tests.emulators.fal import FalEmulator
from tests.emulators.openrouter import KEY as OPENROUTER_KEY
from tests.emulators.openrouter import OpenRouterEmulator

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


class SlowOpenRouter(OpenRouterEmulator):
    """Answers each chat completion after ``latency`` seconds, so runs overlap."""

    latency = 0.3

    def _chat(self, request: Request, match: Any) -> Response:
        time.sleep(self.latency)
        return super()._chat(request, match)


def recipe(name: str, texts: int, images: int = 0, *, tag: str = "") -> str:
    """Paid OpenRouter texts and fal images, independent, and a free step that needs one of each."""
    parts = [f'[recipe]\nname = "{name}"\n']
    for i in range(texts):
        parts.append(
            f'[steps.line{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
            f'prompt = "Line {i} of a poem about the sea{tag}."\nmax_tokens = 40\noutput = "line{i}.txt"\n'
        )
    for i in range(images):
        parts.append(
            f'[steps.picture{i}]\nkind = "text_to_image"\nprovider = "fal"\nmodel = "flux-schnell"\n'
            f'prompt = "picture {i} of the sea{tag}"\nimage_size = "square"\noutput = "picture{i}.png"\n'
        )
    if texts and images:
        parts.append(
            '[steps.card]\nkind = "image_to_image"\nimage = "${steps.picture0}"\n'
            'prompt = "${steps.line0}"\noutput = "card.png"\n'
        )
    return "\n".join(parts)


@dataclass
class Team:
    """The shared services, the provider emulators, and the machines' clones."""

    root: Path
    env: dict[str, str]
    fal: FalEmulator
    openrouter: SlowOpenRouter
    origin: Path = field(init=False)

    def __post_init__(self) -> None:
        self.origin = self.root / "origin"
        self.origin.mkdir()
        self.git(self.origin, "init", "-q", "-b", "main")
        (self.origin / ".gitignore").write_text(".acpbuild/\n")

    def paid(self) -> int:
        return self.fal.submissions + self.openrouter.submissions

    def git(self, where: Path, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def commit(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.origin / name).write_text(text)
        self.git(self.origin, "add", "-A")
        self.git(self.origin, "commit", "-q", "-m", "recipe")

    def clone(self, machine: str) -> Path:
        self.git(self.root, "clone", "-q", str(self.origin), machine)
        return self.root / machine

    def start(self, where: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "acpbuild", *args],
            cwd=where,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def acpbuild(self, where: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "acpbuild", *args],
            cwd=where,
            env=env or self.env,
            capture_output=True,
            text=True,
            check=False,
        )


def finished(run: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, out[-3000:] + err[-3000:]
    found: dict[str, Any] = json.loads(out)
    return found


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in result["steps"]}


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[FalEmulator, SlowOpenRouter]]:
    with FalEmulator() as fal, SlowOpenRouter() as orr:
        yield fal, orr


@pytest.fixture
def team(
    postgres: Any, s3_server: Any, emulators: tuple[FalEmulator, SlowOpenRouter], tmp_path: Path
) -> Iterator[Team]:
    fal, orr = emulators
    fal.reset()
    orr.reset()
    orr.costs.clear()
    orr.latency = 0.3
    env = {
        **os.environ,
        **s3_server.env,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "FAL_KEY": FAL_KEY,
        "OPENROUTER_API_KEY": OPENROUTER_KEY,
        "ACPBUILD_FAL_URL": fal.url,
        "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1",
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.05",
        "ACPBUILD_CONFIG": os.devnull,
        "ACPBUILD_NO_FASTPATH": "1",
        "ACPBUILD_LEDGER": postgres.new_database(),
        "ACPBUILD_REMOTE": f"s3://{s3_server.new_bucket()}/team",
    }
    env.pop("ACPBUILD_STORE", None)
    yield Team(tmp_path, env, fal, orr)


def test_b_restores_what_a_built_and_pays_nothing(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=4, images=2)})
    a, b = team.clone("a"), team.clone("b")
    first = finished(team.start(a, "run", "--yes", "--json"))
    assert team.paid() == 6
    assert first["totals"]["ran"] == 7  # 6 paid generations and the free card
    second = finished(team.start(b, "run", "--yes", "--json"))
    assert team.paid() == 6, "B bought again what A had bought"
    assert second["totals"]["cost"] == 0
    assert set(statuses(second).values()) == {"restored"}
    for name in ("line0.txt", "line3.txt", "picture1.png", "card.png"):
        assert (b / "out" / name).read_bytes() == (a / "out" / name).read_bytes()
    # the blobs came from the shared store into B's own local one
    assert len(list((b / ".acpbuild" / "objects").rglob("*"))) > 7


def test_a_and_b_started_together_pay_once_per_generation(team: Team) -> None:
    trials = 4
    for trial in range(trials):
        team.commit({"acpbuild.toml": recipe("poem", texts=6, images=2, tag=f" (take {trial})")})
        a, b = team.clone(f"a{trial}"), team.clone(f"b{trial}")
        before = team.paid()
        runs = [team.start(a, "run", "--yes", "--json"), team.start(b, "run", "--yes", "--json")]
        results = [finished(run) for run in runs]
        assert team.paid() - before == 8, f"trial {trial}: paid {team.paid() - before} for 8 generations"
        for result in results:
            assert result["totals"]["ran"] + result["totals"]["restored"] == 9, result["totals"]
        # the free card is made by each machine, or restored by one from the other's store
        assert sum(r["totals"]["ran"] for r in results) in (8 + 1, 8 + 2)
        for machine in (a, b):
            assert (machine / "out" / "card.png").stat().st_size > 0
            assert (machine / "out" / "line5.txt").read_text().strip()


def test_b_sees_the_teams_spend(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=5)})
    a, b = team.clone("a"), team.clone("b")
    finished(team.start(a, "run", "--yes", "--json"))
    billed = sum(team.openrouter.costs)
    costs = team.acpbuild(b, "costs", "--json")
    assert costs.returncode == 0, costs.stderr
    totals = json.loads(costs.stdout)["totals"]
    assert totals["cost"] == pytest.approx(billed, abs=1e-6)
    assert totals["generations"] == 5
    # B's own store holds nothing of it: the figures are the team's
    assert not (b / ".acpbuild" / "objects").exists() or not any((b / ".acpbuild" / "objects").rglob("*"))


def test_check_on_b_passes_for_what_a_built_and_committed(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=3, images=1)})
    a = team.clone("a")
    finished(team.start(a, "run", "--yes", "--json"))
    # A commits the lockfile; the outputs stay out of git, in the team's store
    (a / ".gitignore").write_text(".acpbuild/\nout/\n")
    team.git(a, "add", "-A")
    team.git(a, "commit", "-q", "-m", "built")
    team.git(a, "push", "-q", "origin", "HEAD:refs/heads/built")
    b = team.root / "b"
    team.git(team.root, "clone", "-q", "-b", "built", str(team.origin), "b")
    assert (b / "acpbuild.lock").is_file() and not (b / "out").exists()
    checked = team.acpbuild(b, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the CI example's gate says the same
    make = subprocess.run(
        ["make", "-f", str(ROOT / "examples" / "ci" / "Makefile"), "check", f"PYTHON={sys.executable}"],
        cwd=b,
        env=team.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert make.returncode == 0, make.stdout + make.stderr
    # without the team's ledger and store, B could not restore them: the gate fails
    alone = {k: v for k, v in team.env.items() if k not in ("ACPBUILD_LEDGER", "ACPBUILD_REMOTE")}
    assert team.acpbuild(b, "check", env=alone).returncode == 1
    assert team.paid() == 4  # 3 texts and 1 picture, once


def test_two_machines_split_the_work(team: Team) -> None:
    steps = 32
    team.openrouter.latency = 0.5
    team.commit({"acpbuild.toml": recipe("lines", texts=steps)})
    a, b = team.clone("a"), team.clone("b")
    runs = [team.start(a, "run", "--yes", "--json", "-j", "8"), team.start(b, "run", "--yes", "--json", "-j", "8")]
    results = [finished(run) for run in runs]
    assert team.paid() == steps
    ran = [r["totals"]["ran"] for r in results]
    assert sum(ran) == steps
    # each machine bought a fair part while the other waited on none of its places
    print(f"\n{steps} steps: A ran {ran[0]}, B ran {ran[1]}")
    assert min(ran) >= steps // 4, f"A ran {ran[0]}, B ran {ran[1]}"
    for result in results:
        assert result["totals"]["ran"] + result["totals"]["restored"] == steps
    for i in range(steps):
        assert (a / "out" / f"line{i}.txt").read_bytes() == (b / "out" / f"line{i}.txt").read_bytes()


def test_a_wrong_password_or_a_missing_bucket_is_one_clear_error_before_anything_is_paid(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=2)})
    a = team.clone("a")
    url = team.env["ACPBUILD_LEDGER"]
    scheme, rest = url.split("://", 1)
    user, host = rest.split(":", 1)[0], rest.split("@", 1)[1]
    wrong = f"{scheme}://{user}:not-the-password@{host}"
    refused = team.acpbuild(a, "run", "--yes", env={**team.env, "ACPBUILD_LEDGER": wrong})
    assert refused.returncode == 2
    assert "not-the-password" not in refused.stdout + refused.stderr
    assert "***" in refused.stderr and "ledger" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = team.acpbuild(a, "run", "--yes", env={**team.env, "ACPBUILD_REMOTE": "s3://no-such-bucket/team"})
    assert missing.returncode == 2
    assert "no-such-bucket" in missing.stderr and "Traceback" not in missing.stderr
    assert team.paid() == 0
    assert not (a / "out").exists()


def test_doctor_and_info_show_the_shared_ledger_and_store_without_credentials(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=1)})
    a = team.clone("a")
    password = team.env["ACPBUILD_LEDGER"].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    doctor = team.acpbuild(a, "doctor", "--store", str(a / ".acpbuild"))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = {line.split()[1] + " " + line.split()[2]: line for line in doctor.stdout.splitlines() if "shared" in line or "remote" in line}
    assert lines["shared ledger"].startswith("ok") and "PostgreSQL" in lines["shared ledger"]
    assert lines["remote store"].startswith("ok") and team.env["ACPBUILD_REMOTE"].split("/")[2] in lines["remote store"]
    info = team.acpbuild(a, "info", "--json")
    assert info.returncode == 0, info.stderr
    found = json.loads(info.stdout)
    assert found["shared_ledger"].startswith("postgresql://") and "***" in found["shared_ledger"]
    assert found["remote"] == team.env["ACPBUILD_REMOTE"]
    for text in (doctor.stdout, doctor.stderr, info.stdout, team.acpbuild(a, "info").stdout):
        assert password not in text
    broken = team.acpbuild(a, "doctor", "--store", str(a / ".acpbuild"), env={**team.env, "ACPBUILD_REMOTE": "s3://no-such-bucket/x"})
    assert broken.returncode == 1
    assert "no-such-bucket" in broken.stdout


def test_the_spend_outlives_this_machines_store(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=1)})
    a = team.clone("a")
    finished(team.start(a, "run", "--yes", "--json"))
    totals = json.loads(team.acpbuild(a, "costs", "--json").stdout)["totals"]
    assert totals["generations"] == 1
    shutil.rmtree(a / ".acpbuild")
    assert json.loads(team.acpbuild(a, "costs", "--json").stdout)["totals"]["generations"] == 1


def test_a_corrupt_object_in_the_shared_store_is_never_used(team: Team, s3_server: Any) -> None:
    import tomli

    team.commit({"acpbuild.toml": recipe("poem", texts=2)})
    a, b = team.clone("a"), team.clone("b")
    finished(team.start(a, "run", "--yes", "--json"))
    digest = tomli.loads((a / "acpbuild.lock").read_text())["steps"]["line0"]["outputs"][0]["digest"]
    bucket, prefix = team.env["ACPBUILD_REMOTE"].removeprefix("s3://").split("/", 1)
    s3_server.client().put_object(Bucket=bucket, Key=f"{prefix}/{digest[:2]}/{digest[2:]}", Body=b"bit rot")
    second = finished(team.start(b, "run", "--yes", "--json"))
    # line0's object is refused (fetched twice, wrong both times) and bought again; line1 is restored
    assert statuses(second) == {"line0": "ran", "line1": "restored"}
    assert team.paid() == 3
    assert (b / "out" / "line0.txt").read_bytes() != b"bit rot"
    assert (b / "out" / "line0.txt").read_text().strip()
    assert (b / "out" / "line1.txt").read_bytes() == (a / "out" / "line1.txt").read_bytes()


def test_two_machines_together_never_cross_the_teams_monthly_cap(team: Team) -> None:
    team.commit({"acpbuild.toml": recipe("poem", texts=8)})
    a, b = team.clone("a"), team.clone("b")
    plan = json.loads(team.acpbuild(a, "plan", "--json").stdout)
    each = plan["steps"][0]["estimated_cost"]
    assert each > 0 and all(s["estimated_cost"] == each for s in plan["steps"])
    # room for 3 of the 8 at their estimate: whoever buys them, the team stops there
    cap = 3.5 * each
    config = team.root / "config.toml"
    config.write_text(f"monthly_cap_usd = {cap!r}\n")
    env = {**team.env, "ACPBUILD_CONFIG": str(config)}
    runs = [team.start(m, "run", "--yes", "--json", "--keep-going", env=env) for m in (a, b)]
    outs = [run.communicate(timeout=300) for run in runs]
    assert sorted(run.returncode for run in runs) in ([0, 3], [3, 3]), outs
    results = [json.loads(out) for out, _ in outs]
    print(f"\nunder a cap of 3.5 estimates, A and B bought {team.paid()} of 8")
    assert 3 <= team.paid() < 8
    spent = json.loads(team.acpbuild(b, "costs", "--json").stdout)["totals"]["cost"]
    assert spent <= cap + 1e-9
    refused = [name for r in results for name in r["refused"]]
    assert refused and all("cap" in e for r in results for s in r["steps"] if s["status"] == "failed" for e in [s["error"]])
