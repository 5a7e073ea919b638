"""Estimates against what runs cost: the shipped templates, switched to paid providers, on the emulators.

Each template's commented-out paid provider and model are switched on, following the
template's own notes (``# then drop `sentences`; voice = "Rachel"``). Then, in a fresh
folder with the four providers' emulators behind the real SDKs:

1. ``acpbuild estimate`` before the first run: the expected figure and the most it can cost;
2. the first run: what it cost;
3. one edit (the template's first variable, or one row of its CSV, changed), then the estimate and the run again.

The first run's estimate should be within 2x of its cost, and the rerun's within 25%. The
"at most" column is what the estimate was before it learnt from the ledger or used a prior:
every text counted at its ``max_tokens``.

What an LLM writes decides what its speech costs, and the emulators cannot know how long a
real model's answer runs. Here each answer is as long as answers to that request typically
are: 120 to 330 words for a script or a set of lines (chosen by the request's opening words, so
an edit of its subject keeps the length within about 10%), and 20 to 40 words where the request
asks for one sentence. Real models vary more; after the first run, estimates follow what the
ledger saw them write.

    python bench/bench_estimates.py                 # every template
    python bench/bench_estimates.py podcast social  # only these
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import acpbuild
from acpbuild.engine.workflow import forecast
from tests.emulators import Request, Response
from tests.emulators import elevenlabs as el_emulator
from tests.emulators import fal as fal_emulator
from tests.emulators.elevenlabs import ElevenLabsEmulator
from tests.emulators.fal import FalEmulator
from tests.emulators.google import GoogleEmulator
from tests.emulators.openrouter import MODELS, OpenRouterEmulator
from tests.test_mixed_providers import _local_media, emulator_env

TEMPLATES = ["quickstart", "podcast", "social", "image", "video", "catalog"]
WORDS = ["the", "light", "turns", "slowly", "over", "a", "quiet", "harbour", "while", "boats", "come", "home", "and", "gulls", "circle"]


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def answer_words(prompt: str) -> int:
    """How many words an answer to ``prompt`` runs to: its kind of request decides, its subject nudges."""
    opening = " ".join(prompt.lower().split()[:3])
    if "one sentence" in prompt.lower():
        base = 20 + _hash(opening) % 21
    else:
        base = 120 + _hash(opening) % 211
    return max(1, round(base * (0.9 + (_hash(prompt) % 21) / 100)))


class TypicalChat(OpenRouterEmulator):
    """OpenRouter whose answers run as long as a real model's typically do (see the docstring)."""

    def _chat(self, request: Request, match: Any) -> Response:
        response = super()._chat(request, match)
        if response.status != 200 or not isinstance(response.body, dict):
            return response
        body = request.json()
        messages = body["messages"]
        prompt = next(m for m in reversed(messages) if m["role"] == "user")["content"]
        prompt = prompt if isinstance(prompt, str) else " ".join(p.get("text", "") for p in prompt)
        count = answer_words(prompt)
        if isinstance(body.get("max_tokens"), int):
            count = min(count, body["max_tokens"])
        reply = " ".join(WORDS[i % len(WORDS)] for i in range(count)) + "."
        # about 4 characters a token, as the estimate counts them
        tokens_out = -(-len(reply) // 4)
        usage = response.body["usage"]
        price_in, price_out, _ = MODELS[body["model"]]
        usage["completion_tokens"] = tokens_out
        usage["total_tokens"] = usage["prompt_tokens"] + tokens_out
        usage["cost"] = round((usage["prompt_tokens"] * price_in + tokens_out * price_out) / 1e6, 10)
        response.body["choices"][0]["message"]["content"] = reply
        return response


class FreshImages(FalEmulator):
    """fal whose every image differs, as real generations do (the emulator's are all one colour,
    so an edited prompt would make the same bytes, and the steps downstream would not run again)."""

    def _media(self, request: Request, match: Any) -> Response:
        job = self.jobs.get(match["rid"])
        if job is None or job.media == "video":
            return super()._media(request, match)
        from PIL import Image

        shade = _hash(match["rid"]).to_bytes(4, "big")
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (shade[0], shade[1], shade[2])).save(buffer, format="PNG")
        return Response(200, buffer.getvalue(), {"Content-Type": "image/png"})


def paid_variant(text: str) -> str:
    """The template with each step's commented-out paid provider and model switched on, as its notes say."""
    sections = re.split(r"(?m)^(?=\[)", text)
    out = []
    for section in sections:
        model = re.search(r'(?m)^# model = ("[^"]+")(?:\s+# (.*))?$', section)
        if model is None:
            out.append(section)
            continue
        section = re.sub(r"(?m)^# provider = ", "provider = ", section)
        section = section.replace(model.group(0), f"model = {model.group(1)}")
        note = (model.group(2) or "").split("then ", 1)[-1] if "then " in (model.group(2) or "") else ""
        for clause in filter(None, (c.strip() for c in note.split(";"))):
            section = _apply(section, clause)
        out.append(section)
    return "".join(out)


def _apply(section: str, clause: str) -> str:
    replaced = re.match(r"replace `(\w+)` with (\w+) = (.*)", clause)
    if replaced:
        old, key, value = replaced.groups()
        dropped = re.search(rf'(?m)^{old} = "?([^"\n]*)"?$', section)
        what = dropped.group(1) if dropped else old
        section = _drop(section, old)
        value = f'"{what} this picture"' if value.strip() == '"..."' else value
        return _set(section, key, value)
    if clause.startswith("drop "):
        for name in re.split(r",\s*|\s+and\s+", clause.removeprefix("drop ")):
            section = _drop(section, name.strip(" `"))
        return section
    key, _, value = clause.partition(" = ")
    return _set(section, key.strip(), value.strip())


def _drop(section: str, key: str) -> str:
    return re.sub(rf"(?m)^{re.escape(key)} = .*\n", "", section)


def _set(section: str, key: str, value: str) -> str:
    if re.search(rf"(?m)^{re.escape(key)} = ", section):
        return re.sub(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", section)
    return re.sub(r"(?m)^(output = .*)$", rf"{key} = {value}\n\1", section, count=1)


def edit(recipe: Path) -> None:
    """The edit a user makes most: the recipe's first variable changed, or else one row of its CSV."""
    text = recipe.read_text()
    changed = re.sub(r'(?ms)(^\[vars\]\n\w+ = ")([^"]*)"', r'\1\2, in winter"', text, count=1)
    if changed != text:
        recipe.write_text(changed)
        return
    table = next(recipe.parent.glob("*.csv"))
    header, first, *rest = table.read_text().splitlines()
    table.write_text("\n".join([header, first + " in winter", *rest]) + "\n")


def main() -> None:
    names = sys.argv[1:] or TEMPLATES
    media = Path(tempfile.mkdtemp())
    video, audio = _local_media(media)
    # the emulators' stand-in bytes are only shaped like media; serve real files instead
    fal_emulator.mp4_bytes = lambda *a, **k: video  # type: ignore[assignment]
    el_emulator.mp3_bytes = lambda *a, **k: audio  # type: ignore[assignment]
    header = (
        f"{'template':<11} {'1st est.':>9} {'at most':>9} {'1st cost':>9} {'ratio':>6}"
        f" {'edit est.':>10} {'edit cost':>10} {'error':>7}"
    )
    print(header)
    worst_first, worst_edit = 1.0, 0.0
    with FreshImages() as fal, ElevenLabsEmulator() as el, GoogleEmulator() as google, TypicalChat() as chat:
        google.video = video
        env = {**emulator_env(fal, el, google, chat), "PATH": os.environ.get("PATH", "")}
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "recipes"
                folder.mkdir()
                for extra in (ROOT / "recipes").glob(f"{name}.*"):
                    shutil.copy(extra, folder / extra.name)
                recipe = folder / f"{name}.toml"
                # the templates write beside the recipes folder of a project; here, inside it
                text = re.sub(r'(?m)^output_dir = .*$', 'output_dir = "out"', recipe.read_text())
                recipe.write_text(paid_variant(text))
                plan = forecast(recipe, env=env)
                first = acpbuild.run(recipe, env=env, jobs=4)
                assert first.success, first.to_dict()
                edit(recipe)
                again_plan = forecast(recipe, env=env)
                again = acpbuild.run(recipe, env=env, jobs=4)
                assert again.success, again.to_dict()
            ratio = plan.total / first.total_cost if first.total_cost else float("inf")
            error = again_plan.total / again.total_cost - 1 if again.total_cost else 0.0
            worst_first = max(worst_first, ratio, 1 / ratio if ratio else float("inf"))
            worst_edit = max(worst_edit, abs(error))
            print(
                f"{name:<11} {plan.total:>9.4f} {plan.at_most:>9.4f} {first.total_cost:>9.4f} {ratio:>5.2f}x"
                f" {again_plan.total:>10.4f} {again.total_cost:>10.4f} {error:>+7.1%}"
            )
    print(f"first runs: worst estimate/cost {worst_first:.2f}x (target within 2x)")
    print(f"reruns after an edit: worst error {worst_edit:.1%} (target within 25%)")


if __name__ == "__main__":
    main()
