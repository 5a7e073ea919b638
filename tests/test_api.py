"""The public surface: what `import acpbuild` offers, the console script, and the quickstart."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import acpbuild
from acpbuild.media import probe
from tests.pg_server import PostgresServer

ROOT = Path(__file__).resolve().parent.parent


def test_exported_members() -> None:
    # a short, curated surface: adding to it is a decision, so this list is spelled out
    assert sorted(acpbuild.__all__) == sorted(
        [
            "AcpbuildError",
            "BudgetExceeded",
            "ProviderError",
            "Recipe",
            "RecipeError",
            "RunResult",
            "StoreError",
            "__version__",
            "load_recipe",
            "recipe_tasks",
            "run",
        ]
    )
    for name in acpbuild.__all__:
        assert getattr(acpbuild, name) is not None
    with pytest.raises(AttributeError):
        acpbuild.nothing_here  # noqa: B018


def test_version_is_quick_to_ask_for() -> None:
    # --version must not import doit, pydantic, rich or any provider SDK
    code = (
        "import sys; from acpbuild.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('doit', 'pydantic', 'rich', 'fal_client', 'openai', 'google.genai', 'elevenlabs') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"acpbuild {acpbuild.__version__}"


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "acpbuild", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and acpbuild.__version__ in done.stdout


def test_load_recipe_returns_the_validated_model() -> None:
    recipe = acpbuild.load_recipe(ROOT / "recipes" / "quickstart.toml")
    assert isinstance(recipe, acpbuild.Recipe)
    assert list(recipe.steps) == ["script", "narration", "cover", "clip", "final"]
    assert recipe.steps["final"].deps == ("clip", "narration")
    assert recipe.steps["cover"].params["seed"] == 7


def test_readme_command_one_makes_a_playable_video(tmp_path: Path) -> None:
    # `acpbuild run recipes/quickstart.toml` on a copy of the repository's recipes, no keys
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes", ignore=shutil.ignore_patterns(".acpbuild"))
    (tmp_path / ".git").mkdir(exist_ok=True)  # a checkout: recipes/ write to ../out, at its root
    done = subprocess.run(
        [sys.executable, "-m", "acpbuild", "run", "recipes/quickstart.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 ran" in done.stdout
    final = probe(tmp_path / "out" / "quickstart" / "final.mp4")
    assert (final.video_streams, final.audio_streams) == (1, 1)
    assert final.duration_s is not None and final.duration_s >= 3.9


# -- the workflow's stages, called as a library does ----------------------------------
OPENROUTER_STEP = """
[recipe]
name = "paid"
output_dir = "out"

[steps.line]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "One line about a harbour."
max_tokens = 40
output = "line.txt"
"""

FOREACH = """
[recipe]
name = "catalogue"

[steps.caption]
kind = "text"
foreach = [{ id = "a" }, { id = "b" }, { id = "c" }, { id = "d" }]
prompt = "A caption for ${item.id}"
output = "captions/${item.id}.txt"

[steps.title]
kind = "text"
foreach = "${steps.caption}"
prompt = "A title from ${steps.caption}"
output = "titles/${item.id}.txt"

[steps.index]
kind = "text"
prompt = "The catalogue's index page"
output = "index.txt"
"""


def test_a_shard_of_targets_takes_only_those_targets_items(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import selected, shard_of

    path = tmp_path / "acpbuild.toml"
    path.write_text(FOREACH)
    recipe = acpbuild.load_recipe(path, env={})
    both = [n for i in (1, 2) for n in selected(recipe, ["caption"], (i, 2))]
    assert sorted(both) == [f"caption[{i}]" for i in "abcd"]  # no title: only what was asked for
    for i in (1, 2):
        assert {n for n in selected(recipe, ["caption"], (i, 2))} == {
            f"caption[{x}]" for x in "abcd" if shard_of(x, 2) == i
        }


def test_a_bad_shard_is_refused_with_words_that_name_it(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import selected

    path = tmp_path / "acpbuild.toml"
    path.write_text(FOREACH)
    recipe = acpbuild.load_recipe(path, env={})
    with pytest.raises(acpbuild.RecipeError) as bad:
        selected(recipe, None, (3, 2))
    assert "--shard 3/2" in str(bad.value)
    with pytest.raises(acpbuild.RecipeError) as none:
        selected(recipe, ["index"], (1, 2))
    assert none.value.file == str(path)
    assert none.value.message == "--shard splits the items of foreach steps, and those targets have none"
    plain = tmp_path / "plain" / "acpbuild.toml"
    plain.parent.mkdir()
    plain.write_text('[recipe]\nname = "plain"\n\n[steps.one]\nkind = "text"\nprompt = "hi"\noutput = "one.txt"\n')
    with pytest.raises(acpbuild.RecipeError) as recipe_has_none:
        acpbuild.run(plain, env={}, shard=(1, 2))
    assert recipe_has_none.value.file == str(plain)
    assert recipe_has_none.value.message == "--shard splits the items of foreach steps, and plain has none"
    assert str(recipe_has_none.value).startswith(f"{plain}: ")


def test_forecast_plans_the_targets_draft_and_budget_it_is_given(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    chain = tmp_path / "chain" / "chain.toml"
    chain.parent.mkdir()
    shutil.copyfile(ROOT / "tests" / "recipes" / "chain.toml", chain)
    assert [e.name for e in forecast(chain, ["clip"], env={}).entries] == ["cover", "clip"]

    paid = tmp_path / "paid.toml"
    paid.write_text(OPENROUTER_STEP)
    plan = forecast(paid, env={})
    assert plan.total > 0 and plan.over_budget() is None
    assert forecast(paid, draft=True, env={}).total == 0  # a draft pays nothing
    tight = forecast(paid, budget=plan.total / 2, env={})
    assert tight.over_budget() is not None and "--budget" in tight.over_budget()


def test_forecast_says_what_a_run_would_lack_in_the_environment_it_is_given(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast
    from tests.emulators.openrouter import KEY, OpenRouterEmulator

    paid = tmp_path / "paid.toml"
    paid.write_text(OPENROUTER_STEP)
    lacking = forecast(paid, env={})  # needs is asked for by default
    assert lacking.unmet and "OPENROUTER_API_KEY" in str(lacking.unmet)
    with OpenRouterEmulator() as orr:
        env = {"OPENROUTER_API_KEY": KEY, "ACPBUILD_OPENROUTER_URL": f"{orr.url}/api/v1"}
        assert forecast(paid, env=env).unmet == []
        assert orr.submissions == 0  # a forecast buys nothing


def test_forecast_counts_this_months_spend_against_the_monthly_cap(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    paid = tmp_path / "paid.toml"
    paid.write_text(OPENROUTER_STEP)
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 0.000001\n")
    plan = forecast(paid, env={"ACPBUILD_CONFIG": str(config)})
    assert plan.over_budget() is not None and "monthly cap" in plan.over_budget()


def _chain(tmp_path: Path) -> Path:
    path = tmp_path / "chain.toml"
    shutil.copyfile(ROOT / "tests" / "recipes" / "chain.toml", path)
    return path


CHAIN_OUTPUTS = ["clip.mp4", "cover.png", "final.mp4", "script.txt", "voice.wav"]


def test_clean_returns_each_output_it_removed(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import clean

    path = _chain(tmp_path)
    assert acpbuild.run(path, env={}).success
    assert clean(path, env={}) == [tmp_path / "out" / name for name in CHAIN_OUTPUTS]
    assert not any((tmp_path / "out").iterdir())


def test_clean_orphans_removes_an_old_output_once_and_never_a_file_put_there_later(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import clean

    path = _chain(tmp_path)
    env = {"ACPBUILD_STORE": str(tmp_path / "elsewhere")}  # the store this environment names
    assert acpbuild.run(path, env=env).success
    path.write_text(path.read_text().replace('output = "final.mp4"', 'output = "movie.mp4"'))
    assert acpbuild.run(path, env=env).success
    old = tmp_path / "out" / "final.mp4"
    assert clean(path, orphans=True, env=env) == [old]
    assert not old.exists() and (tmp_path / "out" / "movie.mp4").exists()
    old.write_bytes(b"the user's own file, made after the clean")
    assert clean(path, orphans=True, env=env) == []
    assert old.read_bytes() == b"the user's own file, made after the clean"


def test_clean_that_cannot_remove_an_output_names_it(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import clean

    path = _chain(tmp_path)
    (tmp_path / "out" / "final.mp4").mkdir(parents=True)  # a folder where the output goes
    with pytest.raises(acpbuild.AcpbuildError) as refused:
        clean(path, env={})
    assert f"cannot remove {tmp_path / 'out' / 'final.mp4'}: " in str(refused.value)


GROUPED = """
[recipe]
name = "grouped"
output_dir = "out"

[steps.fancy]
kind = "text_to_speech"
text = "Hello from the harbour."
output = "fancy.wav"

[steps.plain]
kind = "text_to_speech"
text = "Hello from the harbour."
speed = 150
output = "plain.wav"

[groups.voice]
steps = ["fancy", "plain"]
merge = "first_success"
output = "voice.wav"
"""


def _kept_job(
    store: Path, recipe: str, step: str, request_id: str, key: str, env: dict[str, str] | None = None
) -> int:
    """A paid job an earlier run submitted and could not finish: kept for the next run to resume."""
    from acpbuild.store import layout

    ledger = layout.open_ledger(store, env)
    try:
        gen = ledger.begin(
            key, recipe=recipe, step=step, kind="text_to_speech", provider="local", model="espeak",
            material="{}", estimated_cost=0.01, draft=False,
        )
        ledger.submitted(gen, request_id)
        ledger.fail(gen, "timed out while polling", resumable=True)
        return gen
    finally:
        ledger.close()


def test_abandoning_a_group_gives_up_its_members_kept_jobs(tmp_path: Path) -> None:
    from acpbuild.engine.workflow import abandon

    path = tmp_path / "acpbuild.toml"
    path.write_text(GROUPED)
    env = {"ACPBUILD_STORE": str(tmp_path / "elsewhere")}
    job = _kept_job(tmp_path / "elsewhere", "grouped", "fancy", "req-1", "k1")
    given_up = abandon(path, ["voice"], env=env)
    assert set(given_up) == {"fancy", "plain"}
    assert [(g.id, g.request_id) for g in given_up["fancy"]] == [(job, "req-1")]
    assert given_up["plain"] == []
    assert abandon(path, ["voice"], env=env) == {"fancy": [], "plain": []}  # nothing left to give up


def test_a_stopped_runs_summary_counts_finished_steps_and_names_the_jobs_to_resume(tmp_path: Path) -> None:
    from acpbuild.engine.context import Context
    from acpbuild.engine.results import StepResult
    from acpbuild.engine.workflow import kept

    path = _chain(tmp_path)
    store = tmp_path / ".acpbuild"
    _kept_job(store, "chain", "voice", "req-7", "k1")
    _kept_job(store, "chain", "clip", "req-8", "k2")
    _kept_job(store, "another-recipe", "voice", "req-9", "k3")  # not this recipe's
    from acpbuild.store import layout

    ledger = layout.open_ledger(store)
    try:  # a job the provider refused for good, and one never sent: nothing to resume
        refused = ledger.begin(
            "k4", recipe="chain", step="final", kind="mux", provider="local", model="ffmpeg",
            material="{}", estimated_cost=0.0, draft=False,
        )
        ledger.submitted(refused, "req-refused")
        ledger.fail(refused, "refused", resumable=False)
        ledger.begin(
            "k5", recipe="chain", step="cover", kind="text_to_image", provider="local", model="m",
            material="{}", estimated_cost=0.0, draft=False,
        )
    finally:
        ledger.close()
    ctx = Context(acpbuild.load_recipe(path, env={}), env={})
    try:
        assert kept(ctx) == "kept 0 finished steps and 2 paid jobs to resume: voice (req-7), clip (req-8)"
        for name, status in [("script", "ran"), ("cover", "restored"), ("clip", "uptodate"), ("voice", "failed"),
                             ("final", "skipped")]:
            ctx.record(StepResult(name, status))
        assert kept(ctx) == "kept 3 finished steps and 2 paid jobs to resume: voice (req-7), clip (req-8)"
    finally:
        ctx.close()


def test_a_stopped_run_without_jobs_to_resume_says_only_what_it_finished(tmp_path: Path) -> None:
    from acpbuild.engine.context import Context
    from acpbuild.engine.results import StepResult
    from acpbuild.engine.workflow import kept

    ctx = Context(acpbuild.load_recipe(_chain(tmp_path), env={}), env={})
    try:
        ctx.record(StepResult("script", "ran"))
        assert kept(ctx) == "kept 1 finished step"
    finally:
        ctx.close()


def test_abandoning_gives_up_jobs_in_the_shared_ledger_the_environment_names(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    from acpbuild.engine.workflow import abandon

    path = tmp_path / "acpbuild.toml"
    path.write_text(GROUPED)
    env = {"ACPBUILD_LEDGER": postgres.new_database()}  # a team's ledger, not this store's own
    job = _kept_job(tmp_path / ".acpbuild", "grouped", "fancy", "req-1", "k1", env=env)
    given_up = abandon(path, ["fancy"], env=env)
    assert [(g.id, g.request_id) for g in given_up["fancy"]] == [(job, "req-1")]


MOODY = '[steps.line]\nkind = "text"\nprompt = "a harbour, ${env.ACPBUILD_TEST_MOOD}"\noutput = "line.txt"\n'


def test_a_run_reads_the_environment_it_is_given_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(MOODY)
    monkeypatch.setenv("ACPBUILD_TEST_MOOD", "stormy")  # the process's own: not the one given
    made = acpbuild.run(recipe, env={"ACPBUILD_TEST_MOOD": "calm"})
    assert made.success, made.to_dict()
    assert "calm" in (tmp_path / "out" / "line.txt").read_text()
    with pytest.raises(acpbuild.RecipeError, match="ACPBUILD_TEST_MOOD"):
        acpbuild.run(recipe, env={})


def test_a_run_given_no_environment_reads_the_process_and_the_dotenv_beside_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text(MOODY)
    monkeypatch.delenv("ACPBUILD_TEST_MOOD", raising=False)
    (tmp_path / ".env").write_text("ACPBUILD_TEST_MOOD=misty\n")
    assert acpbuild.run(recipe).success
    assert "misty" in (tmp_path / "out" / "line.txt").read_text()


def test_a_runs_json_keeps_money_to_a_millionth_and_time_to_a_millisecond() -> None:
    from acpbuild.engine.results import RunResult, StepResult

    step = StepResult("clip", "ran", provider="fal", model="kling", cost=0.2712346, estimated_cost=0.28, seconds=12.34567)
    doc = RunResult("promo", {"clip": step}, total_cost=0.2712346, estimated_cost=0.28, drafted=["clip"]).to_dict()
    assert (doc["totals"]["cost"], doc["totals"]["estimated"]) == (0.271235, 0.28)
    assert (doc["steps"][0]["cost"], doc["steps"][0]["seconds"]) == (0.271235, 12.346)
    assert (doc["draft"], doc["drafted"]) == (True, ["clip"])


def test_a_loaded_recipe_runs_as_it_was_loaded(tmp_path: Path) -> None:
    path = tmp_path / "acpbuild.toml"
    path.write_text(MOODY)
    recipe = acpbuild.load_recipe(path, env={"ACPBUILD_TEST_MOOD": "calm"})
    assert acpbuild.run(recipe).success  # no environment given: the process's and the .env's
    assert "calm" in (tmp_path / "out" / "line.txt").read_text()
