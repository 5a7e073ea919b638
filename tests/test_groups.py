"""Groups: collect_all, first_success and best_quality, on the local provider and on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import provider_calls

import acpbuild
from acpbuild.engine import workflow
from acpbuild.engine.groups import pick_named
from acpbuild.errors import RecipeError
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
    from acpbuild.engine.context import Context

    ctx = Context(recipe, env={})
    try:
        assert ctx.prepare(recipe.steps["summary"], ctx.current_upstream).params["prompt"] == expected
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


# Two videos, and a soft tone against speech: each pair differing in measurable ways.
MEDIA = """
[defaults.text_to_video]
prompt = "harbour"
fps = 10

[steps.wide]
kind = "text_to_video"
width = 192
height = 96
duration_s = {wide_s}
output = "wide.mp4"

[steps.narrow]
kind = "text_to_video"
width = {narrow_w}
height = 96
duration_s = 2
output = "narrow.mp4"

[groups.clip]
steps = ["narrow", "wide"]
merge = "best_quality"
output = "clip.mp4"
{video_score}

[steps.quiet]
kind = "mix_audio"
audios = ["{{tone}}"]
output = "quiet.wav"

[steps.short]
kind = "text_to_speech"
text = "The harbour wakes."
output = "short.wav"

[groups.voice]
steps = ["quiet", "short"]
merge = "best_quality"
output = "voice.wav"
{audio_score}
"""


def _quiet_tone(where: Path) -> Path:
    """Three seconds of very soft sine: longer than the speech, and far quieter."""
    import math
    import struct
    import wave

    path = where / "tone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(b"".join(struct.pack("<h", int(200 * math.sin(i / 10))) for i in range(3 * 22050)))
    return path


@pytest.mark.parametrize(
    ("fill", "clip", "clip_reason", "voice", "voice_reason"),
    [
        # defaults: resolution for video, loudness for audio
        ({"wide_s": 1, "narrow_w": 128, "video_score": "", "audio_score": ""}, "wide", "by resolution 18432", "short", "by loudness"),
        # a resolution tie broken by the longer clip, and said so
        ({"wide_s": 1, "narrow_w": 192, "video_score": "", "audio_score": ""}, "narrow", "by resolution 18432, then duration 2.0 s", "short", "by loudness"),
        # duration alone: the longer video, and the long soft tone over the short speech
        ({"wide_s": 1, "narrow_w": 128, "video_score": 'score = "duration"', "audio_score": 'score = "duration"'}, "narrow", "by duration 2.0", "quiet", "by duration 3.0"),
    ],
)
def test_best_quality_scores_video_and_audio(
    tmp_path: Path, fill: dict[str, object], clip: str, clip_reason: str, voice: str, voice_reason: str
) -> None:
    tone = _quiet_tone(tmp_path)
    path = write(tmp_path, MEDIA.format(**fill).replace("{tone}", str(tone)))
    result = acpbuild.run(path, env={}, jobs=2)
    assert result.success, result.to_dict()
    assert result.steps["clip"].reason == f"chose {clip} {clip_reason}"
    assert result.steps["voice"].reason.startswith(f"chose {voice} {voice_reason}")
    out = tmp_path / "out"
    assert file_digest(out / "clip.mp4") == file_digest(out / f"{clip}.mp4")
    assert file_digest(out / "voice.wav") == file_digest(out / f"{voice}.wav")


def test_members_of_a_group_that_never_ran_keep_their_group(tmp_path: Path) -> None:
    body = """
[steps.good]
kind = "text_to_speech"
text = "Hello."
output = "good.wav"

[steps.bad]
kind = "text_to_speech"
text = "Hello."
voice = "no-such-voice"
output = "bad.wav"

[groups.both]
steps = ["good", "bad"]
merge = "collect_all"
"""
    result = acpbuild.run(write(tmp_path, body), env={}, keep_going=True)
    assert statuses(result) == {"good": "ran", "bad": "failed", "both": "skipped"}
    doc = {s["name"]: s for s in result.to_dict()["steps"]}
    assert doc["good"]["group"] == "both" and doc["bad"]["group"] == "both"
    assert "no-such-voice" in doc["bad"]["error"]


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


PAID_FALLBACK = """
[steps.premium]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "Welcome aboard."
output = "premium.mp3"

[steps.cheap]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_flash_v2_5"
voice = "Adam"
text = "Welcome aboard."
output = "cheap.mp3"

[groups.voice]
steps = ["premium", "cheap"]
merge = "first_success"
output = "voice.mp3"
"""


@pytest.mark.parametrize("premium_fails", [False, True])
def test_first_success_pays_only_for_the_members_it_tries(tmp_path: Path, premium_fails: bool) -> None:
    from tests.emulators import Response
    from tests.emulators.elevenlabs import KEY, ElevenLabsEmulator

    path = write(tmp_path, PAID_FALLBACK)
    with ElevenLabsEmulator() as speech:
        if premium_fails:
            # Rachel's request is refused; Adam's goes through
            refusal = Response(422, {"detail": [{"loc": ["body", "text"], "msg": "refused"}]})
            speech.fail("POST", r"/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM", refusal)
        env = {"ELEVENLABS_API_KEY": KEY, "ACPBUILD_ELEVENLABS_URL": speech.url}
        result = acpbuild.run(path, env=env)
        assert result.success, result.to_dict()
        voices = [r.path.rsplit("/", 1)[1] for r in speech.calls("POST", r"/v1/text-to-speech/.+")]
        if premium_fails:
            assert voices == ["21m00Tcm4TlvDq8ikWAM", "pNInz6obpgDQGcFMaJgB"]  # Rachel, then Adam
            assert result.steps["premium"].status == "failed" and result.steps["premium"].cost == 0
            assert result.steps["cheap"].status == "ran" and result.total_cost == result.steps["cheap"].cost > 0
        else:
            assert voices == ["21m00Tcm4TlvDq8ikWAM"]  # the fallback is never called
            assert result.steps["cheap"].status == "skipped"
        again = acpbuild.run(path, env=env)
        assert again.success and again.total_cost == 0
        assert speech.submissions == len(voices)  # nothing is bought twice, nor retried
