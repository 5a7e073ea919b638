"""Groups: collect_all, first_success and best_quality, on the local provider and on the wire."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import provider_calls

import acpbuild
from acpbuild.engine import lockfile, workflow
from acpbuild.engine.groups import pick_named
from acpbuild.errors import RecipeError
from acpbuild.keys import KEY_SCHEMA, file_digest
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


# -- what a group reports, and when it chooses again ----------------------------------------


def touch_recipe(path: Path) -> None:
    """Edit the recipe's bytes without changing a step: the next run is a full one, not the no-op fast path."""
    path.write_text(path.read_text() + "\n# edited\n")


TEXTS = """
[steps.one]
kind = "text"
prompt = "{one}"
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
"""


def test_collect_all_reports_what_it_collected_under_a_key_that_follows_its_members(tmp_path: Path) -> None:
    path = write(tmp_path, TEXTS.format(one="harbour"))
    first = acpbuild.run(path, env={})
    assert first.success, first.to_dict()
    notes = first.steps["notes"]
    assert (notes.status, notes.reason) == ("ran", "collected 2 outputs")
    assert notes.key
    touch_recipe(path)
    same = acpbuild.run(path, env={}).steps["notes"]
    assert (same.status, same.key) == ("uptodate", notes.key)
    write(tmp_path, TEXTS.format(one="quay"))
    changed = acpbuild.run(path, env={}).steps["notes"]
    assert changed.status == "ran"
    assert changed.key and changed.key != notes.key


def test_first_success_reports_each_member_when_its_choice_still_holds(tmp_path: Path) -> None:
    path = write(tmp_path, FALLBACK.format(voice="no-such-voice"))
    recipe = acpbuild.load_recipe(path, env={})
    out = tmp_path / "out"
    started = time.monotonic()
    first = acpbuild.run(path, env={})
    elapsed = time.monotonic() - started
    assert first.success, first.to_dict()
    voice = first.steps["voice"]
    assert (voice.status, voice.provider, voice.model) == ("ran", "group", "first_success")
    assert voice.outputs == [str(out / "voice.wav")]
    assert 0 <= voice.seconds <= elapsed

    touch_recipe(path)  # a full run: the group itself finds its choice current
    again = acpbuild.run(path, env={})
    assert again.success, again.to_dict()
    voice, fancy, plain = again.steps["voice"], again.steps["fancy"], again.steps["plain"]
    assert (voice.status, voice.reason, voice.outputs) == ("uptodate", "plain chosen (up to date)", [str(out / "voice.wav")])
    assert (voice.provider, voice.model) == ("group", "first_success")
    assert (plain.status, plain.reason, plain.outputs) == ("uptodate", "up to date", [str(out / "plain.wav")])
    assert (fancy.status, fancy.reason, fancy.outputs) == ("skipped", "not tried: voice keeps plain", [])
    for member in (fancy, plain):
        step = recipe.steps[member.name]
        assert (member.provider, member.model, member.group) == (step.provider, step.model, "voice")


def test_first_success_reports_the_members_it_did_not_need(tmp_path: Path) -> None:
    path = write(tmp_path, FALLBACK.format(voice="en"))
    plain_step = acpbuild.load_recipe(path, env={}).steps["plain"]
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    plain = result.steps["plain"]
    assert (plain.status, plain.reason, plain.group) == ("skipped", "not needed: fancy succeeded", "voice")
    assert (plain.provider, plain.model) == (plain_step.provider, plain_step.model)
    assert result.steps["voice"].status == "ran"


THREE_VOICES = """
[steps.fancy]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "no-such-voice"
output = "fancy.wav"

[steps.odd]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "{odd}"
output = "odd.wav"

[steps.plain]
kind = "text_to_speech"
text = "Hello from the harbour."
voice = "{plain}"
output = "plain.wav"

[groups.voice]
steps = ["fancy", "odd", "plain"]
merge = "first_success"
output = "voice.wav"
"""


def test_first_success_falls_back_past_several_failed_members(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_VOICES.format(odd="nor-this-one", plain="en"))
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.failed == []
    assert result.steps["voice"].reason == "fancy, odd failed, fell back to plain"
    assert result.steps["fancy"].fallback and result.steps["odd"].fallback
    assert file_digest(tmp_path / "out" / "voice.wav") == file_digest(tmp_path / "out" / "plain.wav")


def test_first_success_names_each_members_error_when_all_fail(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_VOICES.format(odd="nor-this-one", plain="nor-that-one"))
    result = acpbuild.run(path, env={})
    assert not result.success
    errors = [(result.steps[n].error or "").splitlines()[0] for n in ("fancy", "odd", "plain")]
    assert "no-such-voice" in errors[0] and "nor-this-one" in errors[1] and "nor-that-one" in errors[2]
    assert result.steps["voice"].error == (
        f"group 'voice': every member failed (fancy: {errors[0]}; odd: {errors[1]}; plain: {errors[2]})"
    )


# Members (and a judge) that read another step's output.
UPSTREAM = """
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

[groups.first]
steps = ["soft", "crisp"]
merge = "first_success"
output = "first.png"

[steps.mirror]
kind = "image_to_image"
image = "${steps.base}"
operation = "mirror"
output = "mirror.png"

[steps.grey]
kind = "image_to_image"
image = "${steps.base}"
operation = "grayscale"
output = "grey.png"

[groups.best]
steps = ["mirror", "grey"]
merge = "best_quality"
output = "best.png"
judge = "pick"

[steps.brief]
kind = "text"
prompt = "grey"
sentences = 1
output = "brief.txt"

[steps.pick]
kind = "text"
prompt = "${steps.brief}"
seed = 2
sentences = 1
output = "pick.txt"
"""


def test_groups_whose_members_read_upstream_outputs_choose_and_keep_their_choice(tmp_path: Path) -> None:
    path = write(tmp_path, UPSTREAM)
    store = tmp_path / ".acpbuild"
    first = acpbuild.run(path, env={})
    assert first.success, first.to_dict()
    out = tmp_path / "out"
    judged = pick_named((out / "pick.txt").read_text(), ("mirror", "grey"))
    assert judged is not None
    assert first.steps["best"].reason == f"chose {judged}, named by pick"
    assert first.steps["first"].reason == "chose soft, the first member"
    assert file_digest(out / "first.png") == file_digest(out / "soft.png")
    assert file_digest(out / "best.png") == file_digest(out / f"{judged}.png")
    calls = provider_calls(store)

    touch_recipe(path)  # a full run: each group checks its choice against its members' keys
    again = acpbuild.run(path, env={})
    assert again.success, again.to_dict()
    assert set(statuses(again).values()) <= {"uptodate", "skipped"}
    assert again.steps["first"].reason == "soft chosen (up to date)"
    assert again.steps["best"].reason == f"{judged} chosen (up to date)"
    assert provider_calls(store) == calls


def test_best_quality_chooses_again_when_a_member_or_the_scorer_changes(tmp_path: Path) -> None:
    path = write(tmp_path, IMAGES.format(scorer='score = "resolution"'))
    out = tmp_path / "out"
    assert acpbuild.run(path, env={}).steps["cover"].reason == "chose large by resolution 12288"
    touch_recipe(path)
    assert acpbuild.run(path, env={}).steps["cover"].reason == "large chosen (up to date)"
    # the large member made smaller than the small one: the choice turns over
    write(tmp_path, IMAGES.format(scorer='score = "resolution"').replace("width = 128\nheight = 96", "width = 32\nheight = 24"))
    result = acpbuild.run(path, env={})
    assert result.steps["cover"].reason == "chose small by resolution 3072"
    assert file_digest(out / "cover.png") == file_digest(out / "small.png")
    # another metric over the same members is another choice
    write(tmp_path, IMAGES.format(scorer='score = "sharpness"'))
    result = acpbuild.run(path, env={})
    assert result.steps["cover"].status == "ran"
    assert result.steps["cover"].reason.startswith("chose ") and " by sharpness " in result.steps["cover"].reason


def test_best_quality_chooses_again_when_its_judge_answers_otherwise(tmp_path: Path) -> None:
    judge = '\n[steps.pick]\nkind = "text"\nprompt = "{name}"\nsentences = 1\noutput = "pick.txt"\n'
    path = write(tmp_path, IMAGES.format(scorer='judge = "pick"') + judge.format(name="small"))
    assert acpbuild.run(path, env={}).steps["cover"].reason == "chose small, named by pick"
    write(tmp_path, IMAGES.format(scorer='judge = "pick"') + judge.format(name="large"))
    result = acpbuild.run(path, env={})
    assert result.steps["cover"].reason == "chose large, named by pick"
    assert probe(tmp_path / "out" / "cover.png").width == 128


def test_a_judge_that_names_no_member_fails_the_group_saying_what_it_said(tmp_path: Path) -> None:
    judge = '\n[steps.pick]\nkind = "text"\nprompt = "neither picture pleases"\nsentences = 2\noutput = "pick.txt"\n'
    path = write(tmp_path, IMAGES.format(scorer='judge = "pick"') + judge)
    result = acpbuild.run(path, env={}, keep_going=True)
    said = " ".join((tmp_path / "out" / "pick.txt").read_text().split())
    assert pick_named(said, ("small", "large")) is None and " " in said
    assert result.steps["cover"].status == "failed"
    assert result.steps["cover"].error == (
        f"group 'cover': the judge 'pick' named none of small, large; it said: {said!r}. "
        "Ask it to answer with the name of one member"
    )
    assert not (tmp_path / "out" / "cover.png").exists()


def test_a_resolution_tie_between_images_keeps_the_first_member(tmp_path: Path) -> None:
    body = IMAGES.format(scorer='score = "resolution"').replace("width = 128\nheight = 96", "width = 64\nheight = 48")
    path = write(tmp_path, body.replace('output = "large.png"', 'prompt = "quay"\noutput = "large.png"'))
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["cover"].reason == "chose small by resolution 3072"
    assert file_digest(tmp_path / "out" / "cover.png") == file_digest(tmp_path / "out" / "small.png")
    assert file_digest(tmp_path / "out" / "small.png") != file_digest(tmp_path / "out" / "large.png")


def test_a_new_first_member_is_tried_before_the_kept_fallback(tmp_path: Path) -> None:
    path = write(tmp_path, FALLBACK.format(voice="no-such-voice"))
    assert acpbuild.run(path, env={}).steps["voice"].reason == "fancy failed, fell back to plain"
    quick = '[steps.quick]\nkind = "text_to_speech"\ntext = "Ahoy."\noutput = "quick.wav"\n'
    write(tmp_path, quick + FALLBACK.format(voice="no-such-voice").replace('["fancy", "plain"]', '["quick", "fancy", "plain"]'))
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["voice"].reason == "chose quick, the first member"
    assert file_digest(tmp_path / "out" / "voice.wav") == file_digest(tmp_path / "out" / "quick.wav")


def test_a_steps_output_taken_over_by_a_group_is_chosen_afresh(tmp_path: Path) -> None:
    speech = 'kind = "text_to_speech"\ntext = "Hello from the harbour."\n'
    path = write(tmp_path, f'[steps.plain]\n{speech}speed = 150\noutput = "voice.wav"\n')
    assert acpbuild.run(path, env={}).success
    write(
        tmp_path,
        f'[steps.fancy]\n{speech}output = "fancy.wav"\n[steps.plain]\n{speech}speed = 150\noutput = "plain.wav"\n'
        '[groups.voice]\nsteps = ["fancy", "plain"]\nmerge = "first_success"\noutput = "voice.wav"\n',
    )
    result = acpbuild.run(path, env={})
    assert result.success, result.to_dict()
    assert result.steps["voice"].reason == "chose fancy, the first member"
    assert file_digest(tmp_path / "out" / "voice.wav") == file_digest(tmp_path / "out" / "fancy.wav")


def test_a_fresh_clone_without_the_groups_copy_makes_it_from_the_committed_members(tmp_path: Path) -> None:
    body = IMAGES.format(scorer='score = "resolution"').split("[steps.thumb]")[0]
    path = write(tmp_path, body)
    assert acpbuild.run(path, env={}).success
    clone = tmp_path / "clone"
    (clone / "out").mkdir(parents=True)
    for name in ("acpbuild.toml", "acpbuild.lock", "out/small.png", "out/large.png"):
        (clone / name).write_bytes((tmp_path / name).read_bytes())
    result = acpbuild.run(clone / "acpbuild.toml", env={})
    assert result.success, result.to_dict()
    assert result.steps["cover"].reason == "chose large by resolution 12288"
    assert (clone / "out" / "cover.png").read_bytes() == (tmp_path / "out" / "large.png").read_bytes()
    assert provider_calls(clone / ".acpbuild") == 0
    # the copy entered the clone's store: with the outputs gone, everything comes back from it
    assert workflow.clean(clone / "acpbuild.toml", env={})
    again = acpbuild.run(clone / "acpbuild.toml", env={})
    assert again.success, again.to_dict()
    assert (clone / "out" / "cover.png").read_bytes() == (tmp_path / "out" / "large.png").read_bytes()


@pytest.mark.parametrize(
    ("scorer", "how", "chosen"),
    [
        ('score = "resolution"', {"score": "resolution"}, "large"),
        ('judge = "pick"\n[steps.pick]\nkind = "text"\nprompt = "small"\nsentences = 1\noutput = "pick.txt"\n',
         {"judge": ["pick", "<pick>"]}, "small"),
    ],
)
def test_a_choosing_groups_lock_entry_holds_what_it_chose_among_and_how(
    tmp_path: Path, scorer: str, how: dict[str, object], chosen: str
) -> None:
    # the lock is committed and read by teammates' acpbuild: its material is versioned by KEY_SCHEMA
    path = write(tmp_path, IMAGES.format(scorer=scorer))
    assert acpbuild.run(path, env={}).success
    lock = lockfile.read(lockfile.lock_path(path))
    keys = {name: entry.key for name, entry in lock.items()}
    material = json.loads(lock["cover"].material or "{}")
    expected_how = {k: [v[0], keys["pick"]] if k == "judge" else v for k, v in how.items()}
    assert material == {
        "schema": KEY_SCHEMA,
        "group": "best_quality",
        "members": [["small", keys["small"]], ["large", keys["large"]]],
        **expected_how,
        "chosen": chosen,
    }


@pytest.mark.parametrize(
    ("text", "members", "chosen"),
    [
        ("wide beats tall", ("wide", "tall"), "wide"),  # the first mentioned, whatever the order of names
        ("take.2", ("take", "take.2"), "take.2"),  # the whole answer, though it starts with another name
        ('"take.2".', ("take", "take.2"), "take.2"),  # quoted and stopped
        ("XL", ("L", "XL"), "XL"),
    ],
)
def test_pick_named_prefers_the_whole_answer_then_the_first_mention(
    text: str, members: tuple[str, ...], chosen: str
) -> None:
    assert pick_named(text, members) == chosen


def test_an_earlier_member_made_since_wins_its_place_back(tmp_path: Path) -> None:
    from tests.emulators import Response
    from tests.emulators.elevenlabs import KEY, ElevenLabsEmulator

    path = write(tmp_path, PAID_FALLBACK)
    out = tmp_path / "out"
    with ElevenLabsEmulator() as speech:
        # Rachel's request is refused once: the group falls back to Adam
        refusal = Response(422, {"detail": [{"loc": ["body", "text"], "msg": "refused"}]})
        speech.fail("POST", r"/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM", refusal)
        env = {"ELEVENLABS_API_KEY": KEY, "ACPBUILD_ELEVENLABS_URL": speech.url}
        first = acpbuild.run(path, env=env)
        assert first.success and first.steps["voice"].reason == "premium failed, fell back to cheap"
        # the preferred member is made on its own (named as a target), and so enters the store
        assert acpbuild.run(path, ["premium"], env=env).steps["premium"].status == "ran"
        touch_recipe(path)
        again = acpbuild.run(path, env=env)
        assert again.success, again.to_dict()
        assert again.steps["voice"].reason == "chose premium, the first member"
        assert file_digest(out / "voice.mp3") == file_digest(out / "premium.mp3")
        assert again.total_cost == 0
        assert speech.submissions == 3  # Rachel refused, Adam, Rachel: nothing bought twice


def test_a_judge_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    # the judge writes UTF-8 ("café"); a machine whose locale is plain ASCII must still read it
    judge = '\n[steps.pick]\nkind = "text"\nprompt = "small café"\nseed = 2\nsentences = 1\noutput = "pick.txt"\n'
    path = write(tmp_path, IMAGES.format(scorer='judge = "pick"') + judge)
    env = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "acpbuild", "run", str(path), "--json"],
        check=False,
        env=env,
        capture_output=True,
        cwd=tmp_path,
    )
    assert "café" in (tmp_path / "out" / "pick.txt").read_text(encoding="utf-8")
    steps = {s["name"]: s for s in json.loads(done.stdout)["steps"]}
    assert steps["cover"]["status"] == "ran", steps["cover"]["error"]
    assert steps["cover"]["reason"] == "chose small, named by pick"
