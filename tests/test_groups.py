"""Groups: collect_all, first_success and best_quality, on the local provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import provider_calls

import acpbuild
from acpbuild import workflow
from acpbuild.errors import RecipeError
from acpbuild.groups import pick_named
from acpbuild.keys import file_digest
from acpbuild.media import probe


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "acpbuild.toml"
    path.write_text(body)
    return path


def statuses(result: acpbuild.RunResult) -> dict[str, str]:
    return {n: r.status for n, r in result.steps.items()}


def test_collect_all_feeds_every_member_to_a_concat(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults.text_to_video]
duration_s = 1
fps = 10
width = 160
height = 96

[steps.a]
kind = "text_to_video"
prompt = "first"
output = "a.mp4"

[steps.b]
kind = "text_to_video"
prompt = "second"
output = "b.mp4"

[groups.clips]
steps = ["a", "b"]
merge = "collect_all"

[steps.reel]
kind = "concat"
videos = "${steps.clips}"
output = "reel.mp4"
""",
    )
    recipe = acpbuild.load_recipe(path, env={})
    assert recipe.steps["reel"].deps == ("a", "b")
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["clips"].outputs == [str(tmp_path / "out" / "a.mp4"), str(tmp_path / "out" / "b.mp4")]
    assert probe(tmp_path / "out" / "reel.mp4").duration_s == pytest.approx(2.0, abs=0.15)
    calls = provider_calls(tmp_path / ".acpbuild")
    again = acpbuild.run(path, env={})
    assert set(statuses(again).values()) == {"uptodate"}
    assert provider_calls(tmp_path / ".acpbuild") == calls


def test_collect_all_of_texts_inlines_them_joined_by_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[steps.one]
kind = "text"
prompt = "harbour"
sentences = 1
output = "one.txt"

[steps.two]
kind = "text"
prompt = "lighthouse"
sentences = 1
output = "two.txt"

[groups.notes]
steps = ["one", "two"]
merge = "collect_all"

[steps.summary]
kind = "text"
prompt = "Summarise: ${steps.notes}"
output = "summary.txt"
""",
    )
    recipe = acpbuild.load_recipe(path, env={})
    assert recipe.steps["summary"].deps == ("one", "two")
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    out = tmp_path / "out"
    expected = f"Summarise: {(out / 'one.txt').read_text()}\n\n{(out / 'two.txt').read_text()}"
    from acpbuild.build import Context, job_params

    ctx = Context(recipe, env={})
    try:
        assert job_params(ctx, recipe.steps["summary"])["prompt"] == expected
    finally:
        ctx.close()


FALLBACK = """
[steps.fancy]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "{voice}"
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

[steps.final]
kind = "transcode"
video = "${{steps.clip}}"
output = "final.mp4"

[steps.clip]
kind = "text_to_video"
prompt = "harbour"
duration_s = 1
fps = 10
width = 160
height = 96
output = "clip.mp4"

[steps.narrated]
kind = "mux"
video = "${{steps.clip}}"
audio = "${{steps.voice}}"
output = "narrated.mp4"
"""


def test_first_success_falls_back_when_the_first_member_fails(tmp_path: Path) -> None:
    path = write(tmp_path, FALLBACK.format(voice="no-such-voice"))
    store = tmp_path / ".acpbuild"
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.exit_code == 0
    fancy, plain, group = result.steps["fancy"], result.steps["plain"], result.steps["voice"]
    assert fancy.status == "failed" and "no-such-voice" in (fancy.error or "")
    assert fancy.fallback and fancy.group == "voice"
    assert plain.status == "ran"
    assert group.reason == "fancy failed, fell back to plain"
    out = tmp_path / "out"
    assert file_digest(out / "voice.wav") == file_digest(out / "plain.wav")
    assert result.steps["narrated"].status == "ran"
    # reported per member in --json too
    doc = {s["name"]: s for s in result.to_dict()["steps"]}
    assert doc["fancy"]["status"] == "failed" and doc["fancy"]["group"] == "voice"

    calls = provider_calls(store)
    again = acpbuild.run(path, env={})
    assert again.success
    assert "ran" not in statuses(again).values()
    assert again.steps["voice"].reason == "plain chosen (up to date)"
    assert provider_calls(store) == calls  # the failed member is not tried again


def test_first_success_never_runs_the_fallback_when_the_first_member_succeeds(tmp_path: Path) -> None:
    path = write(tmp_path, FALLBACK.format(voice="en"))
    store = tmp_path / ".acpbuild"
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["fancy"].status == "ran"
    assert result.steps["plain"].status == "skipped"
    assert not (tmp_path / "out" / "plain.wav").exists()
    assert provider_calls(store) == 4  # fancy, clip, final, narrated: never plain
    assert result.steps["voice"].reason == "chose fancy, the first member"

    # outputs gone: the first member comes back from the store, for free
    assert workflow.clean(path, env={})
    again = acpbuild.run(path, env={})
    assert again.steps["fancy"].status == "restored"
    assert again.steps["voice"].status == "restored"
    assert again.steps["plain"].status == "skipped"
    assert provider_calls(store) == 4


def test_first_success_fails_with_every_members_error_when_all_fail(tmp_path: Path) -> None:
    body = FALLBACK.format(voice="no-such-voice").replace("speed = 150", 'voice = "nor-this-one"')
    result = acpbuild.run(write(tmp_path, body), env={}, keep_going=True)
    assert not result.success
    assert {n for n in result.failed} == {"fancy", "plain", "voice"}
    assert "every member failed" in (result.steps["voice"].error or "")
    assert result.steps["narrated"].status == "skipped"


IMAGES = """
[defaults.text_to_image]
prompt = "harbour"

[steps.small]
kind = "text_to_image"
width = 64
height = 48
output = "small.png"

[steps.large]
kind = "text_to_image"
width = 128
height = 96
output = "large.png"

[groups.cover]
steps = ["small", "large"]
merge = "best_quality"
output = "cover.png"
{scorer}

[steps.thumb]
kind = "image_to_image"
image = "${{steps.cover}}"
operation = "mirror"
output = "thumb.png"
"""


def test_best_quality_by_resolution_picks_the_larger_image(tmp_path: Path) -> None:
    path = write(tmp_path, IMAGES.format(scorer='score = "resolution"'))
    store = tmp_path / ".acpbuild"
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["cover"].reason == "chose large by resolution 12288"
    assert probe(tmp_path / "out" / "cover.png").width == 128
    assert probe(tmp_path / "out" / "thumb.png").width == 128
    calls = provider_calls(store)
    again = acpbuild.run(path, env={})
    assert set(statuses(again).values()) == {"uptodate"}
    assert provider_calls(store) == calls


def test_best_quality_by_sharpness_by_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[steps.base]
kind = "text_to_image"
prompt = "harbour at dawn"
width = 128
height = 96
output = "base.png"

[steps.soft]
kind = "image_to_image"
image = "${steps.base}"
operation = "blur"
output = "soft.png"

[steps.crisp]
kind = "image_to_image"
image = "${steps.base}"
operation = "sharpen"
output = "crisp.png"

[groups.best]
steps = ["soft", "crisp"]
merge = "best_quality"
output = "best.png"
""",
    )
    assert acpbuild.load_recipe(path, env={}).groups["best"].score == "sharpness"
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["best"].reason.startswith("chose crisp by sharpness ")
    assert file_digest(tmp_path / "out" / "best.png") == file_digest(tmp_path / "out" / "crisp.png")


def test_best_quality_by_a_judge_step(tmp_path: Path) -> None:
    body = IMAGES.format(scorer='judge = "pick"') + (
        '\n[steps.pick]\nkind = "text"\nprompt = "small"\nsentences = 1\noutput = "pick.txt"\n'
    )
    path = write(tmp_path, body)
    store = tmp_path / ".acpbuild"
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["cover"].reason == "chose small, named by pick"
    assert probe(tmp_path / "out" / "cover.png").width == 64
    calls = provider_calls(store)
    again = acpbuild.run(path, env={})
    assert set(statuses(again).values()) == {"uptodate"}
    assert provider_calls(store) == calls


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        ("wide", "wide"),  # the whole answer is a name
        ("It all begins with Wide.", "wide"),  # a whole word, any case
        ("tall loses to wide", "tall"),  # the first named wins
        ("widescreen is best", None),  # part of a word is not a name
    ],
)
def test_pick_named(text: str, chosen: str | None) -> None:
    assert pick_named(text, ("wide", "tall")) == chosen


BASE = """
[steps.a]
kind = "text_to_image"
prompt = "x"
output = "a.png"

[steps.b]
kind = "text_to_image"
prompt = "y"
output = "b.png"

[steps.t]
kind = "text"
prompt = "z"
output = "t.txt"
"""


@pytest.mark.parametrize(
    ("group", "message", "line"),
    [
        # a member that is not a step, with the nearest name suggested
        ('[groups.g]\nsteps = ["a", "bb"]\nmerge = "collect_all"\n', "unknown member step 'bb'", 18),
        # an unknown merge strategy
        ('[groups.g]\nsteps = ["a", "b"]\nmerge = "first_sucess"\noutput = "g.png"\n', "did you mean 'first_success'", 19),
        # members of mixed media
        ('[groups.g]\nsteps = ["a", "t"]\nmerge = "first_success"\noutput = "g.png"\n', "make different media", 18),
        # a group listing itself
        ('[groups.g]\nsteps = ["a", "g"]\nmerge = "collect_all"\n', "lists itself", 18),
        # a group named like a step
        ('[groups.a]\nsteps = ["a", "b"]\nmerge = "collect_all"\n', "has the name of a step", 17),
        # a step in two groups
        ('[groups.g]\nsteps = ["a", "b"]\nmerge = "collect_all"\n[groups.h]\nsteps = ["b"]\nmerge = "collect_all"\n',
         "already a member of group 'g'", 21),
        # a choosing group needs an output, of the members' media
        ('[groups.g]\nsteps = ["a", "b"]\nmerge = "best_quality"\n', "needs an 'output'", 17),
        ('[groups.g]\nsteps = ["a", "b"]\nmerge = "best_quality"\noutput = "g.mp4"\n', "does not fit the members' media", 20),
        # a metric that does not measure images
        ('[groups.g]\nsteps = ["a", "b"]\nmerge = "best_quality"\noutput = "g.png"\nscore = "loudness"\n',
         "does not measure image", 21),
        ('[groups.g]\nsteps = ["a", "b"]\nmerge = "best_quality"\noutput = "g.png"\nscore = "sharpnes"\n',
         "did you mean 'sharpness'", 21),
        # a judge that is not a text step
        ('[groups.g]\nsteps = ["a"]\nmerge = "best_quality"\noutput = "g.png"\njudge = "b"\n', "must be a single step that makes text", 21),
        # an unknown key in a group table
        ('[groups.g]\nsteps = ["a"]\nmerge = "collect_all"\nouput = "g.png"\n', "did you mean 'output'", 20),
        # a member that uses its own group's output
        (('[groups.g]\nsteps = ["a", "c"]\nmerge = "first_success"\noutput = "g.png"\n'
          '[steps.c]\nkind = "image_to_image"\nimage = "${steps.g}"\noutput = "c.png"\n'), "cycle", 21),
        # a collect_all group put into a single file parameter
        (('[groups.g]\nsteps = ["a", "b"]\nmerge = "collect_all"\n'
          '[steps.c]\nkind = "image_to_image"\nimage = "${steps.g}"\noutput = "c.png"\n'), "one per member", 22),
    ],
)
def test_group_mistakes_are_recipe_errors(tmp_path: Path, group: str, message: str, line: int) -> None:
    path = write(tmp_path, BASE + "\n" + group)
    with pytest.raises(RecipeError) as caught:
        acpbuild.load_recipe(path, env={})
    assert message in str(caught.value)
    assert caught.value.line == line
