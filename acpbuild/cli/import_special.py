"""Step types of the older tool whose conversion is more than a renaming.

Each handler takes a :class:`~acpbuild.cli.import_steps.StepSpec` and writes
the step (and any helper step it needs) through ``StepSpec.build``:

- ``prompt_generation``: an LLM step whose prompt carries the style preset, the
  video style, duration and background context, the input text and (as the
  step's image, when an image comes before it) the picture; later steps that
  take a prompt from media (``image_to_video``) take its output;
- ``image_understanding``: Gemini, with the preset instruction of the older
  tool's model name (describe, classify, OCR, ...) as its prompt;
- ``image_to_image``: the older tool's default prompt when the step has none;
- ``avatar``: when it speaks a text, a text_to_speech step first, whose audio it takes;
- ``replicate_multitalk``: an avatar whose two voices a mix_audio step joins;
- ``generate_subtitles``: captions of the fixed or flowing text, timed as the
  older tool timed them (words per second) where the text is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from acpbuild import providers
from acpbuild.cli.import_models import Pick, norm, pick
from acpbuild.cli.import_tables import (
    I2I_PROMPT,
    PROMPT_MODEL,
    PROMPT_MODEL_WAS,
    PROMPT_STYLES,
    UNDERSTANDING_MODEL,
    UNDERSTANDING_PRESETS,
    UPSCALE_PROMPT,
    VOICES,
    WORDS_PER_SECOND,
)
from acpbuild.cli.import_toml import Block, Raw, escape, ref
from acpbuild.cli.import_yaml import label
from acpbuild.recipe.kinds import KINDS

if TYPE_CHECKING:
    from acpbuild.cli.import_steps import Made, StepSpec


def _model(provider: str, key: str) -> Pick:
    return Pick(provider, providers.catalogue(provider)[key])


def prompt_generation(step: StepSpec) -> Made:
    conv, raw, name = step.conv, step.raw, step.model_name
    image = conv.source("image", step.prefer)
    step.kind = "image_understanding" if image is not None else "text"
    style = PROMPT_STYLES.get(norm(name)) if name else PROMPT_STYLES["openrouter-video-prompt"]
    if style is not None:
        chosen = _model(*PROMPT_MODEL)
        chosen = Pick(
            chosen.provider,
            chosen.model,
            f"a style preset the older tool ran on {PROMPT_MODEL_WAS}, which acpbuild does not serve; "
            "the preset is written into the prompt",
            name or "openrouter_video_prompt",
        )
    else:
        chosen, style = pick(step.kind, name), PROMPT_STYLES["openrouter-video-prompt"]
    wishes = [
        ("Video style", raw.pop("video_style", None) or raw.pop("style", None)),
        ("Length", raw.pop("duration_preference", None)),
        ("Background", raw.pop("background_context", None)),
    ]
    idea_key = next((k for k in ("base_prompt", "prompt", "text", "input_text") if raw.get(k) is not None), None)
    if idea_key is not None:
        idea: Any = conv.templated(escape(str(raw.pop(idea_key))), step.at(idea_key))
    else:
        source = conv.source("text", step.prefer)
        idea = source.value if source is not None else None
    subject = "the scene in this image" if image is not None else "a video of the idea below"
    lines = [
        escape(
            f"Write one prompt for a video generation model describing how {subject} should move: "
            f"the subject's motion, the camera's movement and the atmosphere. Style: {style}."
        )
    ]
    lines += [escape(f"{what}: {value}") for what, value in wishes if value not in (None, "")]
    if idea is not None:
        lines.append("The idea: " + str(idea))
    lines.append("Answer with the prompt only.")
    made = step.build(chosen, preset={"prompt": Raw("\n".join(lines))})
    made.prompt_gen = True
    return made


def image_understanding(step: StepSpec) -> Made:
    conv, raw, name = step.conv, step.raw, step.model_name
    preset = UNDERSTANDING_PRESETS.get(norm(name)) if name else None
    question = raw.pop("question", None)
    asked = raw.pop("prompt", None) or raw.pop("analysis_prompt", None)
    describe = UNDERSTANDING_PRESETS["gemini-describe"]
    comments: tuple[str, ...] = ()
    if preset is not None:
        chosen = _model(*UNDERSTANDING_MODEL)
        comments = (f"the older tool's {name}: Gemini with a preset instruction, written as the prompt",)
        if "{question}" in preset:
            if question or asked:
                text = preset.format(question=question or asked)
            else:
                text = describe
                conv.note(f"{name} has no question to answer: the step describes the image", step.path, meaning=True)
        else:
            text = preset + (f"\n\n{asked}" if asked else "") + (f"\n\n{question}" if question else "")
    else:
        chosen = pick(step.kind, name)
        text = "\n\n".join(str(t) for t in (asked, question) if t) or describe
        if not (asked or question):
            conv.note(f"no prompt or question: the step asks {describe!r}", step.path, meaning=False)
    prompt = conv.templated(escape(str(text)), step.at("prompt"))
    return step.build(chosen, preset={"prompt": prompt}, comments=comments)


def image_to_image(step: StepSpec) -> Made:
    if "prompt" not in step.raw:
        upscaler = norm(step.model_name or "") == "clarity-upscaler"
        step.raw["prompt"] = UPSCALE_PROMPT if upscaler else I2I_PROMPT
    return step.build(pick(step.kind, step.model_name))


def avatar(step: StepSpec) -> Made:
    if step.type in ("replicate_multitalk", "multitalk") or norm(step.model_name or "") == "multitalk":
        return multitalk(step)
    conv, raw = step.conv, step.raw
    text, voice = raw.pop("text", None), raw.pop("voice", None)
    speaks = text is not None or norm(step.model_name or "") == "ai-avatar-single-text"
    has_audio = any(k in raw for k in ("audio", "audio_url", "input_audio", "audio_path", "audio_file"))
    preset: dict[str, Any] = {}
    if speaks and not has_audio:
        speech = _speech(step, text, voice)
        preset["audio"] = ref(speech)
        conv.note(
            f"the older tool's avatar spoke its text itself; acpbuild's avatar takes audio, so the step "
            f"{speech!r} (elevenlabs text_to_speech) speaks it first",
            step.path,
            meaning=True,
        )
    elif text is not None or voice is not None:
        conv.note("text and voice left out: the avatar speaks its audio", step.path, meaning=True)
    return step.build(pick(step.kind, step.model_name), preset=preset)


def multitalk(step: StepSpec) -> Made:
    conv, raw = step.conv, step.raw
    files = []
    for key in ("first_audio", "second_audio"):
        if raw.get(key) is not None:
            found = conv.input_file(raw.pop(key), step.at(key), "audio")
            if found is not None:
                files.append(found)
    preset: dict[str, Any] = {}
    if len(files) == 2:
        mix = _helper(step, "voices", "mix_audio", _model("local", "ffmpeg"), [("audios", files), ("mode", "sequence")])
        preset["audio"] = ref(mix)
        conv.note(
            f"MultiTalk animated two people, one voice each; acpbuild's avatar animates one, speaking both "
            f"voices one after the other (joined by the mix_audio step {mix!r})",
            step.path,
            meaning=True,
        )
    elif files:
        preset["audio"] = files[0]
    return step.build(pick("avatar", step.model_name or "multitalk"), preset=preset)


def subtitles(step: StepSpec) -> Made:
    conv, raw = step.conv, step.raw
    fmt = str(raw.pop("format", "srt")).lower().lstrip(".")
    if fmt not in ("srt", "vtt"):
        conv.note(f"format {fmt!r} is not srt or vtt: writing srt", step.at("format"), meaning=False)
        fmt = "srt"
    wps = raw.pop("words_per_second", WORDS_PER_SECOND)
    if isinstance(wps, bool) or not isinstance(wps, (int, float)) or wps <= 0:
        conv.note(f"words_per_second {wps!r} is not a positive number: using {WORDS_PER_SECOND}", step.at("words_per_second"), meaning=True)
        wps = WORDS_PER_SECOND
    fixed = next((raw[k] for k in ("subtitle_text", "text_override", "text") if isinstance(raw.get(k), str)), None)

    def timing(params: dict[str, Any]) -> tuple[str, ...]:
        if "duration_s" in params or "audio" in params:
            return ()
        if fixed is not None:
            words = len(fixed.split())
            params["duration_s"] = round(max(0.1, words / wps), 2)
            return (f"duration_s: {words} words at {wps:g} words a second, as the older tool timed them",)
        audio = conv.source("audio")
        video = conv.source("video")
        if audio is not None:
            params["audio"] = ref(audio.collect[0]) if audio.collect else audio.value
            how = f"across the audio of {audio.collect[0] if audio.collect else audio.name!r}"
        elif video is not None and video.duration:
            params["duration_s"] = float(video.duration)
            how = f"across the {video.duration:g} s of {video.name!r}"
        else:
            params["duration_s"] = 10.0
            how = "across 10 s (set duration_s to the video's length)"
        conv.note(
            f"the subtitles' text comes from another step, so its length is known only when it runs: "
            f"they are timed {how}, not at {wps:g} words a second",
            step.path,
            meaning=True,
        )
        return ()

    return step.build(pick(step.kind, step.model_name), suffix=f".{fmt}", after=timing)


def _speech(step: StepSpec, text: Any, voice: Any) -> str:
    conv = step.conv
    if isinstance(text, str):
        written: Any = conv.templated(escape(text), step.at("text"))
    else:
        source = conv.source("text", step.prefer)
        if source is None:
            conv.set_prompt("TODO: the pipeline gave no text for the avatar to speak; write it here")
            conv.note("the avatar has no text to speak: it reads ${prompt}, a placeholder in [vars]", step.path, meaning=True)
            source = conv.inputs["text"]
        written = source.value
    params: list[tuple[str, Any]] = [("text", written)]
    if isinstance(voice, str) and voice:
        params.append(("voice", VOICES.get(voice.lower(), voice)))
    return _helper(step, "speech", "text_to_speech", _model("elevenlabs", "eleven_multilingual_v2"), params)


def _helper(step: StepSpec, suffix: str, kind: str, chosen: Pick, params: list[tuple[str, Any]]) -> str:
    """A step the import adds before ``step`` (its speech, its joined voices); returns its name."""
    conv = step.conv
    name = conv.unique(f"{step.name}_{suffix}", numbered=False)
    entries: list[tuple[str | None, Any]] = [(None, f"added by the import for {label(step.path)} ({step.type})")]
    entries += [("kind", kind), ("provider", chosen.provider), ("model", chosen.model.name), *params]
    entries.append(("output", conv.output(name, KINDS[kind], step.path)))
    conv.blocks.append(Block("steps", name, entries))
    conv.origins[name] = (conv.line(step.path), label(step.path))
    return name


HANDLERS: dict[str, Callable[[StepSpec], Made]] = {
    "prompt_generation": prompt_generation,
    "image_understanding": image_understanding,
    "image_to_image": image_to_image,
    "avatar": avatar,
    "subtitles": subtitles,
}
