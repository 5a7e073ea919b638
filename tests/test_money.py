"""Money: the price registry, estimates, budgets, confirmation and spend reports.

The run tests go through the real SDKs to the loopback emulators, and count
billable requests where the provider sees them.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_recipe, provider_calls

import acpbuild
from acpbuild import money, providers
from acpbuild.cli import main
from acpbuild.engine.material import with_defaults
from acpbuild.errors import BudgetExceeded, RecipeError
from acpbuild.media import ffmpeg_exe
from acpbuild.money import spend
from acpbuild.money.estimate import (
    Estimate,
    Expected,
    Unknown,
    estimate,
    expected_media,
    expected_text,
)
from acpbuild.provider import Model, Param
from acpbuild.store.ledger import Generation
from tests import test_mixed_providers as mixed
from tests.emulators import Response
from tests.test_mixed_providers import World

# the emulator world of the mixed-provider tests, shared as fixtures
media = mixed.media
world = mixed.world

ROOT = Path(__file__).resolve().parents[1]
PAID = [name for name in providers.BUILT_IN if providers.provider_class(name).paid]


def _registry() -> dict[tuple[str, str], dict[str, Any]]:
    """The price files read directly, not through acpbuild.money."""
    found = {}
    for path in (ROOT / "acpbuild" / "money" / "prices").glob("*.toml"):
        for model, entry in tomllib.loads(path.read_text())["models"].items():
            found[(path.stem, model)] = entry
    return found


# -- the registry ---------------------------------------------------------------
def test_every_paid_model_has_a_price_and_every_price_a_model() -> None:
    assert PAID == ["fal", "elevenlabs", "google", "openrouter"]
    catalogued = {(p, m) for p in PAID for m in providers.catalogue(p)}
    assert catalogued == set(_registry())
    assert all(money.price_of(p, m) is not None for p, m in catalogued)  # and the registry reads each one
    assert not any(money.price_of("local", m) for m in providers.catalogue("local"))  # local is free
    for entry in _registry().values():
        assert entry["unit"] in money.UNITS
        assert entry["source"] and entry["date"]


def test_every_rate_factor_covers_every_value_of_its_parameter() -> None:
    # a value missing from a `by` table would silently be billed at the base rate
    for (provider, name), entry in _registry().items():
        model = providers.catalogue(provider)[name]
        for param, table in entry.get("by", {}).items():
            specs = [model.params_for(k)[param] for k in model.kinds if param in model.params_for(k)]
            assert specs, f"{provider}/{name}: no parameter {param!r}"
            for spec in specs:
                assert spec.choices is not None and set(map(str, spec.choices)) == set(table), (name, param)


# -- estimates and costs, worked by hand from the published prices -----------------
# Every figure below is worked from the provider's own price (the page the price
# file cites as its source), never read from acpbuild's registry, so a wrong price
# or a wrong formula shared by the registry and the estimate fails here. Half a
# percent of slack: fal quotes some rates "roughly", and the registry keeps its
# resolution factors to three figures.
SLACK = 0.005
TEN_SECONDS = Unknown(seconds=10.0)  # an input video made by another step, 10 s long
UPSCALER = ("fal", "bytedance-upscaler", "upscale_video")
VEO3 = ("google", "veo-3.0-generate-001", "text_to_video")

# (provider, model, kind), the params that change the price, and the figure
HAND_WORKED = [
    # -- unit "image": one flat price per picture
    # fal imagen4 (third-party comparisons of fal-ai/imagen4/preview): $0.05 an image
    pytest.param(("fal", "imagen4", "text_to_image"), {}, 0.05, id="image/imagen4"),
    # Gemini API pricing page: 1290 output tokens x $30/1M = $0.0387, published as $0.039 an image
    pytest.param(("google", "gemini-2.5-flash-image", "text_to_image"), {}, 0.039, id="image/gemini"),
    # -- unit "megapixel", with round_up: fal bills "by rounding up to the nearest megapixel"
    # fal-ai/flux/dev page, $0.025/MP: square_hd 1024x1024 = 1.048576 MP, round_up -> 2 MP x $0.025 = $0.05
    pytest.param(("fal", "flux-dev", "text_to_image"), {"image_size": "square_hd"}, 0.05, id="mp/flux-dev/square"),
    # the default landscape_4_3 1024x768 = 0.786432 MP, round_up -> 1 MP x $0.025 = $0.025
    pytest.param(("fal", "flux-dev", "text_to_image"), {}, 0.025, id="mp/flux-dev/default"),
    # fal-ai/flux/schnell, $0.003/MP: portrait_16_9 576x1024 = 0.589824 MP, round_up -> 1 MP x $0.003
    pytest.param(("fal", "flux-schnell", "text_to_image"), {"image_size": "portrait_16_9"}, 0.003, id="mp/schnell"),
    # -- unit "second"
    # fal kling-video/v2.1/master page: "$1.40 per 5 s, then $0.28 per extra second": 5 s = $1.40
    pytest.param(("fal", "kling", "text_to_video"), {"duration_s": 5}, 1.40, id="second/kling/5s"),
    # 10 s = $1.40 + 5 x $0.28 = $2.80
    pytest.param(("fal", "kling", "text_to_video"), {"duration_s": 10}, 2.80, id="second/kling/10s"),
    # fal mmaudio-v2 page, $0.001/s of audio made: the default 8 s = $0.008 (not the 10 s input)
    pytest.param(("fal", "mmaudio", "add_audio"), {"video": TEN_SECONDS}, 0.008, id="second/mmaudio"),
    # -- unit "1k_characters"
    # ElevenLabs API price, Multilingual v2 $0.10 per 1,000 characters: 1234 chars = $0.1234
    pytest.param(
        ("elevenlabs", "eleven_multilingual_v2", "text_to_speech"), {"text": "x" * 1234}, 0.1234, id="chars/v2",
    ),
    # Flash v2.5 $0.05 per 1,000 characters (0.5 credit a character): 500 chars = $0.025
    pytest.param(("elevenlabs", "eleven_flash_v2_5", "text_to_speech"), {"text": "x" * 500}, 0.025, id="chars/flash"),
    # -- unit "1m_tokens" (acpbuild guesses 4 characters a token and 1290 tokens an image)
    # Gemini API pricing, 2.5 Flash $0.30 in / $2.50 out per 1M: 4000 + 400 chars = 1100 tokens in,
    # 100 out: 1100 x $0.30/1M + 100 x $2.50/1M = $0.00033 + $0.00025 = $0.00058
    pytest.param(
        ("google", "gemini-2.5-flash", "text"), {"prompt": "p" * 4000, "system": "s" * 400, "max_tokens": 100},
        0.00058, id="tokens/gemini",
    ),
    # Anthropic pricing via OpenRouter, Sonnet 4.5 $3 in / $15 out per 1M: 12 chars = 3 tokens + 1290
    # for the image = 1293 in, 100 out: 1293 x $3/1M + 100 x $15/1M = $0.003879 + $0.0015 = $0.005379
    pytest.param(
        ("openrouter", "anthropic/claude-sonnet-4.5", "image_understanding"),
        {"prompt": "Describe it.", "image": "photo.png", "max_tokens": 100}, 0.005379, id="tokens/sonnet+image",
    ),
    # -- a `by` factor: hailuo-02's resolution (fal minimax/hailuo-02/standard page)
    # "A single 6 second 768p video will cost $0.27": the defaults, 6 s at 768P x $0.045/s = $0.27
    pytest.param(("fal", "hailuo-02", "image_to_video"), {}, 0.27, id="by/hailuo/768P"),
    # "512P ... roughly $0.017/sec": 10 s x $0.017 = $0.17
    pytest.param(
        ("fal", "hailuo-02", "image_to_video"), {"duration_s": 10, "resolution": "512P"}, 0.17, id="by/hailuo/512P",
    ),
    # -- a `by` factor: seedance's resolution (fal bytedance/seedance/v1/pro page: "Each 1080p 5 second
    # video costs roughly $0.62. For other resolutions, 1 million video tokens costs $2.5",
    # tokens = height x width x fps x seconds / 1024, at Seedance's 24 fps)
    pytest.param(("fal", "seedance", "text_to_video"), {}, 0.62, id="by/seedance/1080p"),
    # 720p, 5 s: 1280 x 720 x 24 x 5 / 1024 = 108,000 tokens x $2.5/1M = $0.27
    pytest.param(("fal", "seedance", "text_to_video"), {"resolution": "720p"}, 0.27, id="by/seedance/720p"),
    # 480p, 10 s: 854 x 480 x 24 x 10 / 1024 = 96,075 tokens x $2.5/1M = $0.2401875
    pytest.param(
        ("fal", "seedance", "text_to_video"), {"resolution": "480p", "duration_s": 10}, 0.2401875,
        id="by/seedance/480p",
    ),
    # -- two `by` factors: fal bytedance-upscaler page, billed per second of the input video,
    # "1080p $0.0072/s, 2K $0.0144/s, 4K $0.0288/s at 30fps; 60fps doubles the cost"
    # the defaults, 1080p at 30fps: 10 s x $0.0072 = $0.072
    pytest.param(UPSCALER, {"video": TEN_SECONDS}, 0.072, id="by/upscaler/1080p"),
    # 2K: 10 s x $0.0144 = $0.144
    pytest.param(UPSCALER, {"video": TEN_SECONDS, "resolution": "2k"}, 0.144, id="by/upscaler/2k"),
    # 4K at 60fps: 10 s x $0.0288 x 2 = $0.576
    pytest.param(UPSCALER, {"video": TEN_SECONDS, "resolution": "4k", "fps": "60fps"}, 0.576, id="by/upscaler/4k60"),
    # -- usd_with_audio: Vertex AI generative AI pricing, Veo 3 $0.40/s with audio, $0.20/s without
    # the defaults, 8 s with audio: 8 x $0.40 = $3.20
    pytest.param(VEO3, {}, 3.20, id="audio/veo3/on"),
    # 8 s without audio: 8 x $0.20 = $1.60
    pytest.param(VEO3, {"generate_audio": False}, 1.60, id="audio/veo3/off"),
    # Veo 3.1 Fast (aifreeapi, Mar 2026), $0.15/s with audio: 6 s x $0.15 = $0.90
    pytest.param(("google", "veo-3.1-fast-generate-001", "text_to_video"), {"duration_s": 6}, 0.90, id="audio/veo31f"),
    # fal veo3 (fal.ai/pricing snapshot 2026-09-20), $0.20/s without audio: 4 s x $0.20 = $0.80
    pytest.param(
        ("fal", "veo3", "text_to_video"), {"duration_s": 4, "generate_audio": False}, 0.80, id="audio/fal-veo3/off",
    ),
]


@pytest.mark.parametrize(("step", "params", "usd"), HAND_WORKED)
def test_an_estimate_comes_to_the_figure_worked_by_hand(
    step: tuple[str, str, str], params: dict[str, Any], usd: float
) -> None:
    provider, name, kind = step
    model = providers.catalogue(provider)[name]
    # the model's defaults filled in, as a plan does for a step that leaves them out
    found = estimate(provider, model, kind, with_defaults(model.params_for(kind), params))
    assert found.usd == pytest.approx(usd, rel=SLACK), found.formula


# (provider, model, kind), the usage its adapter reports, the step's params, and the figure
REPORTED = [
    # fal flux/dev, $0.025/MP rounded up: a 1024x1024 result = 1.048576 MP -> 2 MP x $0.025 = $0.05
    pytest.param(
        ("fal", "flux-dev", "text_to_image"), {"images": 1, "megapixels": 1.048576}, {"image_size": "square_hd"},
        0.05, id="mp/flux-dev",
    ),
    # fal imagen4, $0.05 an image: one image = $0.05
    pytest.param(("fal", "imagen4", "text_to_image"), {"images": 1}, {}, 0.05, id="image/imagen4"),
    # fal hailuo-02 at 512P, roughly $0.017/s: a 6.0 s video x $0.017 = $0.102
    pytest.param(
        ("fal", "hailuo-02", "image_to_video"), {"seconds": 6.0}, {"resolution": "512P"}, 0.102, id="by/hailuo/512P",
    ),
    # fal bytedance-upscaler at 4K 60fps, $0.0288/s x 2: 10 s of input = $0.576
    pytest.param(UPSCALER, {"seconds": 10.0}, {"resolution": "4k", "fps": "60fps"}, 0.576, id="by/upscaler/4k60"),
    # Vertex Veo 3 Fast, $0.15/s with audio (the default), $0.10/s without: 8 s = $1.20, or $0.80
    pytest.param(("google", "veo-3.0-fast-generate-001", "text_to_video"), {"seconds": 8.0}, {}, 1.20, id="audio/on"),
    pytest.param(
        ("google", "veo-3.0-fast-generate-001", "text_to_video"), {"seconds": 8.0}, {"generate_audio": False}, 0.80,
        id="audio/off",
    ),
    # ElevenLabs Turbo v2.5, $0.05 per 1,000 characters: 2000 characters = $0.10
    pytest.param(
        ("elevenlabs", "eleven_turbo_v2_5", "text_to_speech"), {"characters": 2000}, {}, 0.10, id="chars/turbo",
    ),
    # Gemini 2.5 Pro, $1.25 in / $10 out per 1M (prompts up to 200k): 1200 in + 350 out
    # = $0.0015 + $0.0035 = $0.005
    pytest.param(
        ("google", "gemini-2.5-pro", "text"), {"input_tokens": 1200, "output_tokens": 350}, {}, 0.005,
        id="tokens/gemini-pro",
    ),
]


@pytest.mark.parametrize(("step", "usage", "params", "usd"), REPORTED)
def test_the_cost_of_a_reported_usage_comes_to_the_figure_worked_by_hand(
    step: tuple[str, str, str], usage: dict[str, float], params: dict[str, Any], usd: float
) -> None:
    provider, name, kind = step
    params = with_defaults(providers.catalogue(provider)[name].params_for(kind), params)
    assert money.actual_cost(provider, name, None, usage, params, True) == pytest.approx(usd, rel=SLACK)


def test_a_price_per_request_bills_one_request_unless_told_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # No catalogued model is billed per request today, but a plugin's table may be
    # (acpbuild.provider.prices): a made-up $0.004 a request, worked by hand.
    price = money.Price(provider="example", model="imagen4", unit="request", usd=0.004)
    assert money.cost(price, {}, {}) == pytest.approx(0.004)  # 1 request x $0.004
    assert money.cost(price, {"requests": 3}, {}) == pytest.approx(0.012)  # 3 requests x $0.004
    monkeypatch.setitem(money.registry(), ("example", "imagen4"), price)
    found = estimate("example", providers.catalogue("fal")["imagen4"], "text_to_image", {})
    assert found.usd == pytest.approx(0.004) and found.formula == "1 request x $0.004"


def test_the_estimate_says_how_it_was_computed() -> None:
    hailuo = providers.catalogue("fal")["hailuo-02"]
    assert estimate("fal", hailuo, "image_to_video", {"duration_s": 6}).formula == "6 s x $0.045/s"
    voice = providers.catalogue("elevenlabs")["eleven_multilingual_v2"]
    guessed = estimate("elevenlabs", voice, "text_to_speech", {"text": Unknown(800, why="800 characters assumed")})
    assert guessed.usd == pytest.approx(0.08) and "assumed" in guessed.guess
    assert estimate("local", providers.catalogue("local")["espeak"], "text_to_speech", {"text": "hi"}, paid=False).usd == 0


def test_a_model_without_a_price_is_estimated_at_nothing_and_says_so() -> None:
    # a plugin's model that its price table leaves out: the plan shows $0 and why, and does not fail
    sketch = Model("sketch", {"text_to_image": "example/sketch"}, {"prompt": Param("str")})
    found = estimate("example", sketch, "text_to_image", {"prompt": "a lighthouse"})
    assert found == Estimate(0.0, "no price in the registry", guess="unpriced model")


@pytest.mark.parametrize(
    ("params", "usd", "formula"),
    [
        # Vertex AI pricing, Veo 3: $0.40/s with audio, 8 s = $3.20
        ({"duration_s": 8, "generate_audio": True}, 3.20, "8 s x $0.40/s (with audio)"),
        # $0.20/s without audio, 8 s = $1.60
        ({"duration_s": 8, "generate_audio": False}, 1.60, "8 s x $0.20/s"),
        # params that do not mention generate_audio (a caller that fills in no defaults): without audio
        ({"duration_s": 8}, 1.60, "8 s x $0.20/s"),
    ],
)
def test_a_per_second_estimate_shows_the_rate_with_or_without_audio(
    params: dict[str, Any], usd: float, formula: str
) -> None:
    found = estimate("google", providers.catalogue("google")["veo-3.0-generate-001"], "text_to_video", params)
    assert (found.usd, found.formula) == (pytest.approx(usd), formula)


AVATAR = providers.catalogue("fal")["kling-avatar"]  # an image lip-synced to an audio track


def test_a_per_second_price_of_an_audio_input_not_yet_made_is_its_expected_length() -> None:
    # kling-avatar bills each second of the audio it is given, $0.115 a second (the price file's
    # figure from fal's ai-avatar page): speech expected to last 12 s costs 12 x $0.115 = $1.38
    voice = Unknown(seconds=12.0, why="the voice: 12 s assumed")
    found = estimate("fal", AVATAR, "avatar", {"image": "face.png", "audio": voice})
    assert (found.usd, found.formula) == (pytest.approx(1.38), "12 s x $0.115/s")
    assert found.guess == "the voice: 12 s assumed"


def test_a_per_second_price_of_an_input_file_is_its_probed_length(tmp_path: Path) -> None:
    voice = tmp_path / "voice.wav"
    tone = [ffmpeg_exe(), "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=d=3", str(voice)]
    subprocess.run(tone, check=True, timeout=60)
    # a 3 s recording: 3 x $0.115 = $0.345, and nothing guessed
    found = estimate("fal", AVATAR, "avatar", {"image": "face.png", "audio": str(voice)})
    assert (found.usd, found.formula, found.guess) == (pytest.approx(0.345), "3 s x $0.115/s", "")
    # a file ffmpeg cannot read, or none at all: 10 s assumed, 10 x $0.115 = $1.15, and said
    (tmp_path / "notes.wav").write_text("not a recording")
    for name in ("notes.wav", "missing.wav"):
        found = estimate("fal", AVATAR, "avatar", {"image": "face.png", "audio": str(tmp_path / name)})
        assert (found.usd, found.guess) == (pytest.approx(1.15), f"length of {name} unknown, 10 s assumed")


def test_a_per_second_price_with_no_length_to_go_on_assumes_ten_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a plugin's model, a made-up $0.05 a second, that takes a video for one of its kinds only
    price = money.Price(provider="example", model="restyle", unit="second", usd=0.05)
    monkeypatch.setitem(money.registry(), ("example", "restyle"), price)
    restyle = Model(
        "restyle",
        {"text_to_video": "example/t2v", "video_to_video": "example/v2v"},
        {"prompt": Param("str"), "video": Param("video", kinds=("video_to_video",))},
    )
    # its video's 4 s: 4 x $0.05 = $0.20
    found = estimate("example", restyle, "video_to_video", {"prompt": "p", "video": Unknown(seconds=4.0)})
    assert (found.usd, found.formula, found.guess) == (pytest.approx(0.20), "4 s x $0.05/s", "")
    # no duration_s and no video: 10 s assumed, 10 x $0.05 = $0.50
    found = estimate("example", restyle, "text_to_video", {"prompt": "p"})
    assert (found.usd, found.guess) == (pytest.approx(0.50), "no duration_s and no media input: 10 s assumed")


@pytest.mark.parametrize(
    ("params", "usd", "formula", "guess", "bound"),
    [
        # Gemini API pricing, 2.5 Flash $0.30 in / $2.50 out per 1M. No max_tokens and no history:
        # ~300 tokens out expected, 8192 at most; 4000 characters = 1000 tokens in, and no system
        # prompt adds nothing: 1000 x $0.30/1M + 300 x $2.50/1M = $0.0003 + $0.00075 = $0.00105,
        # at most $0.0003 + 8192 x $2.50/1M = $0.0003 + $0.02048 = $0.02078
        (
            {"prompt": "p" * 4000}, 0.00105, "1000 in x $0.30/1M + 300 out x $2.50/1M",
            "no earlier run: ~300 tokens expected", 0.02078,
        ),
        # 10 characters are 2.5 tokens, billed as 3; the prior stops at max_tokens:
        # 3 x $0.30/1M + 100 x $2.50/1M = $0.0000009 + $0.00025, which is also the most
        (
            {"prompt": "p" * 10, "max_tokens": 100}, 0.0002509, "3 in x $0.30/1M + 100 out x $2.50/1M",
            "no earlier run: ~100 tokens expected", 0.0002509,
        ),
    ],
)
def test_a_token_priced_estimate_counts_whole_tokens_and_expects_a_likely_answer_below_its_cap(
    params: dict[str, Any], usd: float, formula: str, guess: str, bound: float
) -> None:
    found = estimate("google", providers.catalogue("google")["gemini-2.5-flash"], "text", params)
    assert (found.usd, found.formula, found.guess) == (pytest.approx(usd), formula, guess)
    assert found.bound == pytest.approx(bound)


@pytest.mark.parametrize(
    ("params", "usd", "formula"),
    [
        # 1600 x 1250 = exactly 2 MP: 2 MP x $0.02 = $0.04, not rounded up to 3
        ({"width": 1600, "height": 1250}, 0.04, "1600x1250 = 2.00 MP, 2 MP (rounded up) x $0.02/MP"),
        # 1601 x 1250 = 2.00125 MP: rounded up to 3 MP x $0.02 = $0.06
        ({"width": 1601, "height": 1250}, 0.06, "1601x1250 = 2.00 MP, 3 MP (rounded up) x $0.02/MP"),
        # a width alone is no size: fal's default landscape_4_3, 1024 x 768 = 0.79 MP -> 1 MP = $0.02
        ({"width": 1600}, 0.02, "1024x768 = 0.79 MP, 1 MP (rounded up) x $0.02/MP"),
        # a named size acpbuild does not know is priced at that default size too
        ({"image_size": "poster_2_3"}, 0.02, "1024x768 = 0.79 MP, 1 MP (rounded up) x $0.02/MP"),
    ],
)
def test_a_megapixel_price_is_billed_on_the_width_and_height_asked_for(
    monkeypatch: pytest.MonkeyPatch, params: dict[str, Any], usd: float, formula: str
) -> None:
    # a plugin's model that takes a width and a height, a made-up $0.02/MP rounded up as fal rounds
    price = money.Price(provider="example", model="poster", unit="megapixel", usd=0.02, round_up=True)
    monkeypatch.setitem(money.registry(), ("example", "poster"), price)
    poster = Model(
        "poster",
        {"text_to_image": "example/poster"},
        {"prompt": Param("str"), "width": Param("int"), "height": Param("int"), "image_size": Param("str")},
    )
    found = estimate("example", poster, "text_to_image", {"prompt": "p", **params})
    assert (found.usd, found.formula) == (pytest.approx(usd), formula)


def test_a_round_up_price_given_an_exact_whole_amount_is_not_rounded_up() -> None:
    # fal flux/dev, $0.025/MP, "rounding up to the nearest megapixel": a result of exactly
    # 1 MP (1000 x 1000) bills 1 MP = $0.025, and exactly 2 MP bills 2 = $0.05
    price = money.price_of("fal", "flux-dev")
    assert price is not None
    assert money.cost(price, {"megapixels": 1.0}, {}) == pytest.approx(0.025)
    assert money.cost(price, {"megapixels": 2.0}, {}) == pytest.approx(0.05)
    # a hair over a whole megapixel is the next one: 2 MP = $0.05
    assert money.cost(price, {"megapixels": 1.000001}, {}) == pytest.approx(0.05)


def test_a_parameter_value_missing_from_a_rate_table_leaves_the_rate_alone() -> None:
    # a plugin's table may list only the values that change the rate (acpbuild.provider.prices):
    # a made-up $0.10 a second, doubled at 1080p
    price = money.Price(
        provider="example", model="clip", unit="second", usd=0.10, by={"resolution": {"1080p": 2.0}}
    )
    assert price.factors({"resolution": "720p"}) == []
    assert money.cost(price, {"seconds": 5}, {"resolution": "720p"}) == pytest.approx(0.50)  # 5 x $0.10
    assert money.cost(price, {"seconds": 5}, {"resolution": "1080p"}) == pytest.approx(1.00)  # 5 x $0.10 x 2


def test_a_free_provider_costs_nothing_whatever_it_reports() -> None:
    assert money.actual_cost("local", "espeak", None, {"characters": 2000}, {}, False) == 0.0
    assert money.actual_cost("local", "espeak", 0.5, {}, {}, False) == 0.0


def test_estimate_needs_no_key_and_shows_each_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # without keys every step is still priced; a warning names the keys a run would need
    recipe = copy_recipe("mixed.toml", tmp_path)
    assert main(["estimate", str(recipe), "--detailed"]) == 0
    printed = capsys.readouterr()
    assert "6 s x $0.045/s" in printed.out and "a run now would pay ~$" in printed.out
    assert "acpbuild: warning: a run of mixed needs what is missing here" in printed.err
    assert "FAL_KEY is not set (fal)" in printed.err
    assert main(["plan", str(recipe)]) == 2  # a run now would stop there
    capsys.readouterr()
    assert main(["estimate", str(recipe), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["clip"]["estimated_cost"] == pytest.approx(0.27)
    assert steps["final"]["estimated_cost"] == 0
    assert steps["voice"]["guess"]  # its text is not written yet
    assert doc["totals"]["estimated"] == pytest.approx(sum(s["estimated_cost"] for s in doc["steps"]))
    assert doc["totals"]["cost"] == 0


# -- budget reservations --------------------------------------------------------------
class SlowBudget(money.Budget):
    """Reads what is committed slowly, so that unguarded reservations would overlap."""

    @property
    def committed(self) -> float:
        value = super().committed
        time.sleep(0.002)
        return value


def test_reservations_never_cross_the_budget_under_contention() -> None:
    budget = SlowBudget({"the budget": 0.35 + 1e-9})
    granted: list[int] = []
    start = threading.Barrier(32)

    def take(i: int) -> None:
        start.wait()
        try:
            budget.reserve(f"s{i}", 0.05)
            granted.append(i)
        except BudgetExceeded:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 7
    assert budget.warnings  # 0.35 of 0.35 is past 80%
    budget.settle(f"s{granted[0]}", 0.01)  # a cheaper actual frees room
    budget.reserve("extra", 0.04)


def test_a_recipe_whose_plan_is_over_budget_makes_zero_paid_calls(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", str(recipe), "--yes", "--budget", "0.10"]) == 3
    assert "nothing was spent" in capsys.readouterr().err
    assert world.requests() == world.lookups()  # only the free check of the recipe's voice
    assert provider_calls(tmp_path / ".acpbuild") == 0
    # the recipe's own budget_usd does the same through the Python API
    recipe.write_text(recipe.read_text().replace('output_dir = "out"', 'output_dir = "out"\nbudget_usd = 0.1'))
    with pytest.raises(BudgetExceeded):
        acpbuild.run(recipe, env=world.env)
    assert world.requests() == world.lookups()


def test_twenty_steps_under_a_budget_for_seven_make_exactly_seven_calls_at_j16(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("twenty.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    # -k: build what fits rather than refuse the whole plan up front
    code = main(["run", str(recipe), "-j", "16", "-k", "--yes", "--json", "--budget", str(7 * 0.05 + 1e-6)])
    assert code == 3
    assert world.fal.submissions == 7
    assert provider_calls(tmp_path / ".acpbuild") == 7
    doc = json.loads(capsys.readouterr().out)
    statuses = [s["status"] for s in doc["steps"]]
    assert statuses.count("ran") == 7 and statuses.count("failed") == 13
    assert len(doc["refused"]) == 13 and doc["exit_code"] == 3
    refused = next(s for s in doc["steps"] if s["status"] == "failed")
    assert "budget" in refused["error"] and "not made" in refused["error"]
    assert refused["estimated_cost"] == pytest.approx(0.05) and refused["cost"] == 0  # what it would have cost
    assert doc["totals"]["cost"] == pytest.approx(0.35)
    assert doc["totals"]["estimated"] == pytest.approx(0.35)
    assert doc["warnings"]  # past 80% of the budget


def test_a_refused_step_skips_its_dependants_and_independent_steps_still_run(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    result = acpbuild.run(recipe, env=world.env, budget=0.10, keep_going=True)
    status = {n: s.status for n, s in result.steps.items()}
    assert status["clip"] == "failed" and status["teaser"] == "failed"  # $0.27 and $0.60 do not fit
    assert status["final"] == "skipped" and status["poster"] == "skipped"
    assert {status[n] for n in ("script", "voice", "cover", "caption")} == {"ran"}
    assert result.refused == ["clip", "teaser"] or sorted(result.refused) == ["clip", "teaser"]
    assert result.exit_code == 3
    assert result.total_cost <= 0.10
    assert world.fal.submissions == 1  # the cover only


SPEECH_PAIR = """
[recipe]
name = "pair"
output_dir = "out"

[steps.a]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "{text}"
output = "a.mp3"

[steps.b]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Adam"
text = "{text}"
output = "b.mp3"
"""


@pytest.mark.parametrize(
    ("failure", "b_runs"),
    [
        # a 500 after the request reached ElevenLabs may be billed: its estimate stays spent
        (Response(500, {"detail": {"status": "internal", "message": "boom"}}), False),
        # a rejected request is not billed: its reservation is given back, and b fits
        (Response(422, {"detail": [{"loc": ["body", "text"], "msg": "bad"}]}), True),
    ],
)
def test_a_failed_call_keeps_its_estimate_spent_only_when_it_may_be_billed(
    world: World, tmp_path: Path, failure: Response, b_runs: bool
) -> None:
    text = "x" * 500  # $0.05 each at $0.10 per 1k characters
    recipe = tmp_path / "pair.toml"
    recipe.write_text(SPEECH_PAIR.format(text=text))
    world.elevenlabs.fail("POST", r"/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM", failure)  # a's voice
    result = acpbuild.run(recipe, env=world.env, jobs=1, budget=0.075, keep_going=True)
    assert result.steps["a"].status == "failed"
    if b_runs:
        assert result.steps["b"].status == "ran" and world.elevenlabs.submissions == 2
    else:
        assert result.refused == ["b"] and world.elevenlabs.submissions == 1
        assert result.exit_code == 3


def test_a_cheaper_actual_cost_frees_budget_for_the_next_call(world: World, tmp_path: Path) -> None:
    # a call reserves its bound, max_tokens in full; the emulator's usage.cost is far lower
    body = "".join(
        f'[steps.n{i}]\nkind = "text"\nprovider = "openrouter"\nmodel = "anthropic/claude-sonnet-4.5"\n'
        f'prompt = "Note {i}"\nmax_tokens = 4000\noutput = "n{i}.txt"\n\n'
        for i in range(2)
    )
    recipe = tmp_path / "notes.toml"
    recipe.write_text(body)
    one = estimate(
        "openrouter", providers.catalogue("openrouter")["anthropic/claude-sonnet-4.5"], "text",
        {"prompt": "Note 0", "max_tokens": 4000},
    ).bound
    result = acpbuild.run(recipe, env=world.env, jobs=1, budget=one * 1.5, keep_going=True)
    assert result.success, result.to_dict()  # the first call settled at its (small) actual cost
    assert result.total_cost < one * 0.5
    assert world.openrouter.submissions == 2


def test_the_monthly_cap_counts_what_other_runs_have_in_flight(world: World, tmp_path: Path) -> None:
    # another run on this store has a $0.45 job in flight: the cap has room for one $0.05 image
    recipe = copy_recipe("twenty.toml", tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 0.55\n")
    env = {**world.env, "ACPBUILD_CONFIG": str(config)}
    from acpbuild.store import layout

    ledger = layout.open_ledger(tmp_path / ".acpbuild")
    ledger.begin(
        "someone-elses-key", recipe="other", step="video", kind="text_to_video", provider="fal",
        model="kling", material="{}", estimated_cost=0.45, draft=False,
    )
    ledger.close()
    result = acpbuild.run(recipe, env=env, keep_going=True)
    assert world.fal.submissions == 2 and len(result.refused) == 18


# -- confirmation ---------------------------------------------------------------------
def test_a_non_interactive_run_without_yes_makes_zero_paid_calls(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["run", str(recipe)]) == 3
    out, err = capsys.readouterr()
    assert "will run" in out  # the plan is printed
    assert "refusing to spend" in err and "--yes" in err
    assert world.requests() == world.lookups() and provider_calls(tmp_path / ".acpbuild") == 0


@pytest.mark.parametrize(
    ("answer", "code", "calls"),
    [
        ("", 3, 0),  # the default is no
        ("n", 3, 0),
        ("y", 0, 8),  # one generation per step: six paid, two local
    ],
)
def test_an_interactive_run_asks_first(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, calls: int
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    assert main(["run", str(recipe)]) == code
    assert asked and "[y/N]" in asked[0]
    assert provider_calls(tmp_path / ".acpbuild") == calls


def test_the_threshold_comes_from_the_config_and_free_runs_never_ask(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    local = copy_recipe("chain.toml", tmp_path / "local")
    assert main(["run", str(local)]) == 0  # all local, $0: never asks
    config = tmp_path / "config.toml"
    config.write_text("confirm_above_usd = 5\n")
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    recipe = copy_recipe("mixed.toml", tmp_path / "paid")
    assert main(["run", str(recipe)]) == 0  # ~$1 is under the $5 threshold


# -- the monthly cap --------------------------------------------------------------------
def test_the_monthly_cap_counts_this_months_spend_in_the_ledger(world: World, tmp_path: Path) -> None:
    recipe = copy_recipe("twenty.toml", tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("monthly_cap_usd = 0.5\n")
    env = {**world.env, "ACPBUILD_CONFIG": str(config)}
    first = acpbuild.run(recipe, ["img01", "img02", "img03", "img04", "img05", "img06"], env=env)
    assert first.success and first.total_cost == pytest.approx(0.30)
    assert first.warnings == []
    second = acpbuild.run(recipe, env=env, keep_going=True)  # $0.20 of the cap is left: four more
    assert world.fal.submissions == 10
    assert len(second.refused) == 10 and second.exit_code == 3
    assert any("monthly cap" in w for w in second.warnings)


# -- actual cost and reports --------------------------------------------------------------
def test_the_ledger_records_estimate_and_actual_and_costs_reports_savings(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = copy_recipe("mixed.toml", tmp_path)
    result = acpbuild.run(recipe, env=world.env)
    assert result.success
    with sqlite3.connect(tmp_path / ".acpbuild" / "ledger.sqlite3") as db:
        rows = dict(db.execute("SELECT step, estimated_cost FROM generations WHERE state='done'").fetchall())
        actual = dict(db.execute("SELECT step, actual_cost FROM generations WHERE state='done'").fetchall())
    assert rows["clip"] == pytest.approx(0.27) and actual["clip"] == pytest.approx(0.27)
    # at run time the voice's text is known: its estimate is exact
    chars = len((tmp_path / "out" / "script.txt").read_text())
    assert rows["voice"] == pytest.approx(chars / 1000 * 0.10) == actual["voice"]
    assert result.steps["clip"].estimated_cost == pytest.approx(0.27)
    assert result.estimated_cost == pytest.approx(sum(s.estimated_cost for s in result.steps.values()))

    assert main(["clean", str(recipe)]) == 0
    restored = acpbuild.run(recipe, env=world.env)
    assert restored.total_cost == 0 and restored.estimated_cost == 0
    capsys.readouterr()
    assert main(["costs", str(recipe), "--by", "model", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["cost"] == pytest.approx(result.total_cost)
    assert doc["totals"]["saved"] == pytest.approx(result.total_cost)  # everything was restored once
    assert doc["totals"]["restores"] == 8
    by_model = {r["group"]: r for r in doc["rows"]}
    assert by_model["fal/hailuo-02"]["cost"] == pytest.approx(0.27)
    assert main(["costs", str(recipe), "--by", "day", "--since", "2000-01-01"]) == 0
    assert "restores saved" in capsys.readouterr().out
    assert main(["costs", str(recipe), "--since", "yesterday"]) == 2


def _generation(id: int, state: str = "done", **fields: Any) -> Generation:
    bought = Generation(
        id, f"key{id}", state, "promo", "cover", "image", "fal", "flux", None, 0.10, 0.08,
        None, None, None, None, None, draft=0, created=DAY, finished=DAY + 60,
    )  # fmt: skip
    return dataclasses.replace(bought, **fields)


# 2026-03-01 12:00 local time, the day every generation below finished on
DAY = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))


class _SpendLedger:
    """The two ledger methods a spend report reads, answering from lists."""

    def __init__(self) -> None:
        cover = _generation(1)
        self.found = [
            cover,
            # received: paid and fetched, so bought, though not stored yet
            _generation(2, "received", step="clip", estimated_cost=0.50, actual_cost=0.45),
            # sent, answer lost: possibly billed at its estimate, not counted as bought
            _generation(3, "possibly_billed", step="clip", provider="google", model="veo", estimated_cost=1.00,
                        actual_cost=None),
            # failed before billing, and a draft: neither is spend
            _generation(4, "failed", estimated_cost=9.0, actual_cost=None),
            _generation(5, draft=1, estimated_cost=9.0, actual_cost=9.0),
            # nothing says where it came from
            _generation(6, recipe=None, step=None, provider=None, estimated_cost=0.02, actual_cost=None),
        ]
        # the cover reused in another recipe's step, saving what it cost; a draft's reuse saves nothing
        self.reused = [(cover, "teaser", "poster", 0.08, DAY + 120), (self.found[4], "promo", "cover", 9.0, DAY)]

    def generations(self, *, since: float | None = None) -> list[Generation]:
        return [gen for gen in self.found if since is None or (gen.finished or gen.created) >= since]

    def restores(self, *, since: float | None = None) -> list[tuple[Generation, str | None, str | None, float, float]]:
        return [reuse for reuse in self.reused if since is None or reuse[4] >= since]


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        # a restore counts where it happened (teaser), a generation where it was bought (promo);
        # possibly billed spend sorts promo first, unknown recipes are "?", equal costs sort by name
        ("recipe", [
            {"group": "promo", "generations": 2, "estimated": 0.6, "cost": 0.53, "restores": 0, "saved": 0.0,
             "in_doubt": 1, "possibly_billed": 1.0},
            {"group": "?", "generations": 1, "estimated": 0.02, "cost": 0.0, "restores": 0, "saved": 0.0,
             "in_doubt": 0, "possibly_billed": 0.0},
            {"group": "teaser", "generations": 0, "estimated": 0.0, "cost": 0.0, "restores": 1, "saved": 0.08,
             "in_doubt": 0, "possibly_billed": 0.0},
        ]),
        # recipe:step, with "?" for either part unknown
        ("step", [
            {"group": "promo:clip", "generations": 1, "estimated": 0.5, "cost": 0.45, "restores": 0,
             "saved": 0.0, "in_doubt": 1, "possibly_billed": 1.0},
            {"group": "promo:cover", "generations": 1, "estimated": 0.1, "cost": 0.08, "restores": 0,
             "saved": 0.0, "in_doubt": 0, "possibly_billed": 0.0},
            {"group": "?:?", "generations": 1, "estimated": 0.02, "cost": 0.0, "restores": 0, "saved": 0.0,
             "in_doubt": 0, "possibly_billed": 0.0},
            {"group": "teaser:poster", "generations": 0, "estimated": 0.0, "cost": 0.0, "restores": 1,
             "saved": 0.08, "in_doubt": 0, "possibly_billed": 0.0},
        ]),
        # the largest cost, paid or possibly billed, first; ties by name
        ("provider", [
            {"group": "google", "generations": 0, "estimated": 0.0, "cost": 0.0, "restores": 0, "saved": 0.0,
             "in_doubt": 1, "possibly_billed": 1.0},
            {"group": "fal", "generations": 2, "estimated": 0.6, "cost": 0.53, "restores": 1, "saved": 0.08,
             "in_doubt": 0, "possibly_billed": 0.0},
            {"group": "?", "generations": 1, "estimated": 0.02, "cost": 0.0, "restores": 0, "saved": 0.0,
             "in_doubt": 0, "possibly_billed": 0.0},
        ]),
        ("model", [
            {"group": "google/veo", "generations": 0, "estimated": 0.0, "cost": 0.0, "restores": 0,
             "saved": 0.0, "in_doubt": 1, "possibly_billed": 1.0},
            {"group": "fal/flux", "generations": 2, "estimated": 0.6, "cost": 0.53, "restores": 1,
             "saved": 0.08, "in_doubt": 0, "possibly_billed": 0.0},
            {"group": "None/flux", "generations": 1, "estimated": 0.02, "cost": 0.0, "restores": 0,
             "saved": 0.0, "in_doubt": 0, "possibly_billed": 0.0},
        ]),
        # the local day each finished (or, for a restore, happened) on
        ("day", [
            {"group": "2026-03-01", "generations": 3, "estimated": 0.62, "cost": 0.53, "restores": 1,
             "saved": 0.08, "in_doubt": 1, "possibly_billed": 1.0},
        ]),
    ],
)
def test_a_spend_report_counts_each_state_once_in_its_group(by: str, expected: list[dict[str, Any]]) -> None:
    rows = [row.to_dict() for row in spend.report(_SpendLedger(), by=by)]  # type: ignore[arg-type]
    assert rows == [{**row, **{k: pytest.approx(v) for k, v in row.items() if isinstance(v, float)}} for row in expected]


def test_a_spend_report_adds_up_repeats_in_a_group_and_counts_an_unknown_estimate_as_nothing() -> None:
    ledger = _SpendLedger()
    cover = _generation(3, estimated_cost=None, actual_cost=0.5)  # bought from an unpriced model
    ledger.found = [
        # two answers lost in one recipe, one of them at an estimate nobody knew
        _generation(1, "possibly_billed", estimated_cost=0.25, actual_cost=None),
        _generation(2, "submitted", estimated_cost=None, actual_cost=None),
        cover,
    ]
    ledger.reused = [(cover, "promo", "cover", 0.5, DAY + 120), (cover, "promo", "cover", 0.5, DAY + 180)]
    rows = [row.to_dict() for row in spend.report(ledger)]  # type: ignore[arg-type]
    # grouped by recipe unless told otherwise
    assert rows == [
        {"group": "promo", "generations": 1, "estimated": 0.0, "cost": 0.5, "restores": 2, "saved": 1.0,
         "in_doubt": 2, "possibly_billed": 0.25},
    ]  # fmt: skip


def test_a_spend_report_since_a_moment_asks_the_ledger_for_nothing_before_it() -> None:
    # every generation finished at DAY + 60; the one restore that counts happened at DAY + 120
    later = spend.report(_SpendLedger(), since=DAY + 90)  # type: ignore[arg-type]
    assert [(row.group, row.restores, row.generations) for row in later] == [("teaser", 1, 0)]
    assert spend.report(_SpendLedger(), since=DAY + 3600) == []  # type: ignore[arg-type]


def test_since_is_local_midnight_of_the_date_and_anything_else_is_refused() -> None:
    assert spend.parse_since("2026-03-01") == time.mktime((2026, 3, 1, 0, 0, 0, 0, 0, -1))
    with pytest.raises(RecipeError, match="'yesterday' is not a date"):
        spend.parse_since("yesterday")


@pytest.mark.parametrize(
    ("kind", "params", "seconds", "why"),
    [
        # a length the step asks for is the length it will have
        ("text_to_video", {"duration_s": 8}, 8.0, ""),
        # speech at 15 characters a second: 300 characters make 20 s
        ("text_to_speech", {"text": "x" * 300}, 20.0, "speech not yet made: 20 s assumed at 15 chars/s"),
        # a short line still lasts a second
        ("text_to_speech", {"text": "hi"}, 1.0, "speech not yet made: 1 s assumed at 15 chars/s"),
        # speech of a text not yet written: as long as the text is expected to be
        ("text_to_speech", {"text": Unknown(600, why="w")}, 40.0, "speech not yet made: 40 s assumed at 15 chars/s"),
        # an upscale or a mux lasts as long as its input
        ("upscale_video", {"video": Unknown(seconds=6.0, why="upstream")}, 6.0, "upstream"),
        # nothing to go on
        ("text_to_video", {"prompt": "a cat"}, 10.0, "media not yet made: 10 s assumed"),
    ],
)
def test_a_media_output_not_yet_made_is_expected_to_last(
    kind: str, params: dict[str, Any], seconds: float, why: str
) -> None:
    expected = expected_media(kind, params)
    assert (expected.seconds, expected.why) == (seconds, why)


def test_a_text_not_yet_written_is_expected_at_what_it_wrote_before_and_at_most_its_max_tokens() -> None:
    # no history: a script of ~300 tokens (1,200 characters), at most max_tokens x 4 characters
    first = expected_text("text", {}, paid=True)
    assert (first.chars, first.max_chars) == (1200, 8192 * 4)
    assert first.why == "text not yet written: 1200 characters expected (no earlier run), at most 8192 max_tokens x 4"
    # the prior never passes a smaller max_tokens
    short = expected_text("text", {"max_tokens": 100}, paid=True)
    assert (short.chars, short.max_chars) == (400, 400)
    # what its last run wrote, 2,000 characters, stands for what it will write
    learnt = Expected(2000, 600, "as its last run wrote")
    again = expected_text("text", {"max_tokens": 1000}, paid=True, expect=learnt)
    assert (again.chars, again.max_chars, again.why) == (
        2000, 4000, "text not yet written: 2000 characters, as its last run wrote"
    )
    local = expected_text("text", {"max_tokens": 100}, paid=False)
    assert (local.chars, local.why) == (1000, "a local text, 1000 characters assumed")


def test_speech_of_a_text_not_yet_written_is_expected_at_its_prior_and_bounded_by_max_tokens() -> None:
    # eleven_multilingual_v2: $0.10 per 1,000 characters (prices/elevenlabs.toml)
    model = providers.catalogue("elevenlabs")["eleven_multilingual_v2"]
    script = Unknown(1200, why="script: 1200 characters expected", max_chars=32768)
    found = estimate("elevenlabs", model, "text_to_speech", {"text": script, "voice": "Rachel"})
    # expected 1,200 chars x $0.10/1k = $0.12; at most 32,768 chars = $3.2768
    assert found.usd == pytest.approx(0.12) and found.bound == pytest.approx(3.2768)
    assert found.guess == "script: 1200 characters expected"


def test_an_llm_call_is_expected_at_what_it_wrote_before_and_reserves_its_max_tokens() -> None:
    # gemini-2.5-flash on OpenRouter: $0.30 per 1M input tokens, $2.50 per 1M output tokens
    model = providers.catalogue("openrouter")["google/gemini-2.5-flash"]
    params = {"prompt": "x" * 400, "max_tokens": 4000}  # 100 input tokens
    first = estimate("openrouter", model, "text", params)
    # 100 in x $0.30/1M + 300 out (the prior) x $2.50/1M = $0.00003 + $0.00075
    assert first.usd == pytest.approx(0.00078)
    # at most: 100 in + 4,000 out x $2.50/1M = $0.00003 + $0.01
    assert first.bound == pytest.approx(0.01003)
    learnt = estimate("openrouter", model, "text", params, expect=Expected(4000, 1000, "as its last run wrote"))
    assert learnt.usd == pytest.approx(0.00003 + 0.0025) and learnt.bound == pytest.approx(0.01003)
    assert "as its last run wrote" in learnt.guess


def test_a_per_second_price_of_media_not_yet_made_is_its_expected_length() -> None:
    # topaz upscales at $0.17 a second of its input: an input expected to last 6 s costs $1.02
    model = providers.catalogue("fal")["topaz"]
    found = estimate("fal", model, "upscale_video", {"video": Unknown(seconds=6.0, why="the clip: 6 s assumed")})
    assert (found.usd, found.formula, found.guess) == (pytest.approx(1.02), "6 s x $0.17/s", "the clip: 6 s assumed")


def test_a_budget_adds_up_what_each_step_paid_and_warns_once_past_80_percent() -> None:
    budget = money.Budget({"the run's budget of $1.00": 1.0})
    budget.reserve("a", 0.30)
    budget.reserve("b", 0.30)
    budget.settle("a", 0.25)  # cheaper than its estimate: the rest goes back to the budget
    budget.settle("b", None)  # no actual figure: its estimate is spent
    assert budget.spent == pytest.approx(0.55) and budget.reserved == {}
    assert budget.room() == pytest.approx(0.45) and budget.warnings == []
    budget.reserve("c", 0.30)  # 0.85 committed: past 80%
    budget.reserve("d", 0.05)
    assert budget.warnings == ["this run has committed $0.8500: past 80% of the run's budget of $1.00"]
    with pytest.raises(BudgetExceeded, match=r"would cost ~\$0.2000 but only \$0.1000 of the run's budget"):
        budget.reserve("e", 0.20)
    budget.release("c")  # failed before anything was billed
    assert budget.committed == pytest.approx(0.60)


def test_a_budget_warns_at_80_percent_of_the_months_cap_with_its_earlier_spend_counted() -> None:
    # $5 of a $10 monthly cap is spent already: this run may commit $5, and the warning comes
    # when the month reaches $8, not when this run reaches 80% of its own $5
    label = "the monthly cap of $10"
    budget = money.Budget({label: 5.0}, already={label: 5.0})
    budget.reserve("a", 2.0)  # $7 of $10
    assert budget.warnings == []
    budget.reserve("b", 1.0)  # $8 of $10: exactly 80%
    assert budget.warnings == ["this run has committed $3.0000: past 80% of the monthly cap of $10"]


def test_a_zero_budget_lets_only_free_calls_through_and_never_warns() -> None:
    budget = money.Budget({"the budget of $0 (--budget)": 0.0})
    budget.reserve("free", 0.0)
    with pytest.raises(BudgetExceeded) as refused:
        budget.reserve("paid", 0.05)
    assert refused.value.usd == 0.05  # what the refused step would have cost
    assert budget.warnings == []


def test_frozen_refuses_every_paid_call_and_says_what_it_would_have_cost() -> None:
    budget = money.Budget(never_pay=True)
    with pytest.raises(BudgetExceeded, match="--frozen") as refused:
        budget.reserve("clip", 0.27)
    assert refused.value.usd == 0.27 and budget.committed == 0.0


def test_a_step_that_reserves_twice_holds_both() -> None:
    budget = money.Budget({"the run's budget of $1.00": 1.0})
    budget.reserve("clip", 0.25)
    budget.reserve("clip", 0.25)
    assert budget.committed == pytest.approx(0.50)
    budget.settle("clip", None)  # no actual figure: both estimates are spent
    assert (budget.spent, budget.reserved) == (pytest.approx(0.50), {})


def test_a_step_that_reserved_nothing_spends_only_the_cost_it_reports() -> None:
    budget = money.Budget({"the run's budget of $1.00": 1.0})
    budget.settle("cover", None)  # cost unknown: nothing to add
    budget.settle("poster", 0.125)
    budget.release("title")  # nothing to give back
    assert (budget.spent, budget.reserved) == (0.125, {})


def test_an_output_that_does_not_say_its_size_costs_none_not_zero() -> None:
    # $0 would hand the money back to the budget; None makes the runner charge the estimate
    assert money.actual_cost("fal", "topaz", None, {}, {}, True) is None
    assert money.actual_cost("fal", "topaz", None, {"seconds": 2.0}, {}, True) == pytest.approx(0.34)
    assert money.actual_cost("fal", "imagen4", None, {}, {}, True) == pytest.approx(0.05)  # per image: one
    assert money.actual_cost("openrouter", "openai/gpt-4o-mini", 0.0123, {}, {}, True) == 0.0123  # as reported


def test_confirmation_counts_what_first_success_fallbacks_could_cost(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_groups import PAID_FALLBACK

    recipe = tmp_path / "voice.toml"
    recipe.write_text(PAID_FALLBACK)
    plan = workflow_forecast(recipe, world.env)
    first = len("Welcome aboard.") / 1000 * 0.10  # eleven_multilingual_v2
    fallback = len("Welcome aboard.") / 1000 * 0.05  # eleven_flash_v2_5
    assert plan.total == pytest.approx(first) and plan.worst_case == pytest.approx(first + fallback)
    # a threshold between the two: the first member alone would not ask, the fallback makes it ask
    config = tmp_path / "config.toml"
    config.write_text(f"confirm_above_usd = {first + fallback / 2}\n")
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["run", str(recipe)]) == 3
    out, err = capsys.readouterr()
    assert "if every first_success fallback has to run" in out
    assert f"refusing to spend up to ~${first + fallback:.4f}" in err
    assert err.strip().endswith(f"acpbuild run {recipe} --yes")  # the command to copy
    assert world.elevenlabs.submissions == 0


def test_a_threshold_below_the_plan_asks(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("confirm_above_usd = 0.5\n")  # the mixed plan is about $0.97
    monkeypatch.setenv("ACPBUILD_CONFIG", str(config))
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    recipe = copy_recipe("mixed.toml", tmp_path)
    assert main(["run", str(recipe), "-j", "2"]) == 3
    assert f"acpbuild run {recipe} -j 2 --yes" in capsys.readouterr().err
    assert world.requests() == world.lookups()


def workflow_forecast(recipe: Path, env: dict[str, str]) -> Any:
    from acpbuild.engine import workflow

    return workflow.forecast(recipe, env=env)


SCRIPT_AND_VOICE = """
[recipe]
name = "told"
output_dir = "out"

[steps.script]
kind = "text"
provider = "openrouter"
model = "google/gemini-2.5-flash"
prompt = "{prompt}"
output = "script.txt"

[steps.voice]
kind = "text_to_speech"
provider = "elevenlabs"
model = "eleven_multilingual_v2"
voice = "Rachel"
text = "${{steps.script}}"
output = "voice.mp3"
"""


def test_before_any_run_the_plan_expects_a_text_at_a_prior_for_its_kind(world: World, tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = tmp_path / "told.toml"
    recipe.write_text(SCRIPT_AND_VOICE.format(prompt="Narrate " + "a lighthouse at dawn " * 30))
    first = {e.name: e.estimate for e in forecast(recipe, env=world.env).entries}
    # no history: a ~300-token script, 1,200 characters at $0.10/1k = $0.12; at most the
    # catalogue's default max_tokens, 4,096 x 4 characters = $1.6384
    assert first["voice"].usd == pytest.approx(0.12) and first["voice"].bound == pytest.approx(1.6384)
    assert "no earlier run" in first["voice"].guess


def test_estimate_shows_the_expected_figure_beside_the_most_it_can_cost(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "told.toml"
    recipe.write_text(SCRIPT_AND_VOICE.format(prompt="Narrate " + "a lighthouse at dawn " * 30))
    monkeypatch.chdir(tmp_path)
    assert main(["estimate", str(recipe)]) == 0
    out = capsys.readouterr().out
    # script: 638 characters = 160 tokens in x $0.30/1M + 300 out x $2.50/1M = $0.000798, at most
    # 4,096 out = $0.010288; voice: $0.12, at most $1.6384
    assert "a run now would pay ~$0.1208 (at most $1.6487)" in out
    # a budget between the two is checked against the expected figure: the plan fits
    assert main(["estimate", str(recipe), "--budget", "1", "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["estimated"] == pytest.approx(0.120798) and totals["at_most"] == pytest.approx(1.648688)


def test_after_an_edit_the_plan_expects_the_text_its_step_wrote_last_time(world: World, tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = tmp_path / "told.toml"
    recipe.write_text(SCRIPT_AND_VOICE.format(prompt="Narrate " + "a lighthouse at dawn " * 30))
    assert acpbuild.run(recipe, env=world.env).success
    written = (tmp_path / "out" / "script.txt").read_text(encoding="utf-8")
    # the emulator's answer repeats the prompt: far longer than the prior
    assert len(written) > 500
    recipe.write_text(SCRIPT_AND_VOICE.format(prompt="Narrate " + "a lighthouse at dusk " * 30))
    again = {e.name: e for e in forecast(recipe, env=world.env).entries}
    assert again["script"].state == "run" and again["voice"].state == "run"
    voice = again["voice"].estimate
    assert voice.usd == pytest.approx(len(written.encode()) * 0.10 / 1000)
    assert "as its last run wrote" in voice.guess
    assert voice.bound == pytest.approx(1.6384)
    # another recipe's first text from the same model is expected at what that model wrote
    other = tmp_path / "other.toml"
    other.write_text(SCRIPT_AND_VOICE.format(prompt="Describe a harbour").replace('name = "told"', 'name = "other"'))
    fresh = {e.name: e.estimate for e in forecast(other, env=world.env).entries}
    assert fresh["voice"].usd == pytest.approx(len(written.encode()) * 0.10 / 1000)
    assert "the median of 1 earlier google/gemini-2.5-flash texts" in fresh["voice"].guess


def test_a_speech_of_a_text_on_disk_and_one_to_be_written_is_expected_at_both(world: World, tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = tmp_path / "told.toml"
    intro = '[steps.intro]\nkind = "text"\nprompt = "Good evening from the harbour."\noutput = "intro.txt"\n'
    told = SCRIPT_AND_VOICE.replace('text = "${{steps.script}}"', 'text = "${{steps.intro}} ${{steps.script}}"')
    recipe.write_text(told.format(prompt="Narrate " + "a lighthouse at dawn " * 30) + "\n" + intro)
    assert acpbuild.run(recipe, env=world.env).success
    said = len((tmp_path / "out" / "intro.txt").read_bytes())
    written = len((tmp_path / "out" / "script.txt").read_bytes())
    # the script is edited: the intro is read where it lies, the script expected as it was last time
    recipe.write_text(told.format(prompt="Narrate " + "a lighthouse at dusk " * 30) + "\n" + intro)
    plan = {e.name: e for e in forecast(recipe, env=world.env).entries}
    assert (plan["intro"].state, plan["script"].state, plan["voice"].state) == ("uptodate", "run", "run")
    voice = plan["voice"].estimate
    assert voice.usd == pytest.approx((said + 1 + written) * 0.10 / 1000)
    assert voice.guess == f"script: text not yet written: {written} characters, as its last run wrote"
    assert voice.formula == f"{said + 1 + written} chars x $0.10/1k chars"
    # at most: the script at its longest, 4,096 tokens of 4 characters, beside the same intro
    assert voice.bound == pytest.approx((said + 1 + 4096 * 4) * 0.10 / 1000)


def test_the_plan_expects_media_not_yet_made_as_long_as_its_step_asks(world: World, tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = tmp_path / "clip.toml"
    recipe.write_text(
        '[steps.clip]\nkind = "text_to_video"\nprovider = "fal"\nmodel = "kling"\nprompt = "a harbour"\n'
        'duration_s = 5\noutput = "clip.mp4"\n\n'
        '[steps.sharp]\nkind = "upscale_video"\nprovider = "fal"\nmodel = "topaz"\nvideo = "${steps.clip}"\noutput = "sharp.mp4"\n'
    )
    sharp = {e.name: e for e in forecast(recipe, env=world.env).entries}["sharp"].estimate
    # topaz bills $0.17 a second of its input: the clip's 5 s, not a length assumed
    assert (sharp.usd, sharp.formula) == (pytest.approx(0.85), "5 s x $0.17/s")
    # a step reading an output not yet made is still priced on its own parameters (here kling's default 5 s)
    recipe.write_text(
        '[steps.still]\nkind = "text_to_image"\nprovider = "fal"\nmodel = "flux-schnell"\nprompt = "a harbour"\n'
        'output = "still.png"\n\n[steps.clip]\nkind = "image_to_video"\nprovider = "fal"\nmodel = "kling"\n'
        'image = "${steps.still}"\nprompt = "waves"\noutput = "clip.mp4"\n'
    )
    clip = {e.name: e for e in forecast(recipe, env=world.env).entries}["clip"].estimate
    assert (clip.usd, clip.formula) == (pytest.approx(1.40), "5 s x $0.28/s")


def test_the_plan_expects_a_description_not_yet_written_at_the_prior_for_descriptions(
    world: World, tmp_path: Path
) -> None:
    from PIL import Image

    from acpbuild.engine.workflow import forecast

    Image.new("RGB", (32, 32), "teal").save(tmp_path / "photo.png")
    recipe = tmp_path / "look.toml"
    recipe.write_text(
        '[steps.look]\nkind = "image_understanding"\nprovider = "openrouter"\nmodel = "google/gemini-2.5-flash"\n'
        'image = "photo.png"\nprompt = "Describe it."\noutput = "look.txt"\n\n'
        '[steps.voice]\nkind = "text_to_speech"\nprovider = "elevenlabs"\nmodel = "eleven_multilingual_v2"\n'
        'voice = "Rachel"\ntext = "${steps.look}"\noutput = "voice.mp3"\n'
    )
    plan = {e.name: e.estimate for e in forecast(recipe, env=world.env).entries}
    # no history: a description is expected at 150 tokens of 4 characters (a script at 300),
    # both in what it is billed for and in the speech made of it
    assert "+ 150 out x" in plan["look"].formula
    assert plan["voice"].usd == pytest.approx(150 * 4 * 0.10 / 1000)


def test_the_plan_expects_a_speech_not_yet_made_to_last_as_long_as_its_text_takes_to_say(
    world: World, tmp_path: Path
) -> None:
    from PIL import Image

    from acpbuild.engine.workflow import forecast

    Image.new("RGB", (32, 32), "teal").save(tmp_path / "face.png")
    recipe = tmp_path / "talk.toml"
    text = "A harbour at dawn, gulls over the water. " * 7 + "Good morning."  # 300 characters
    assert len(text) == 300
    recipe.write_text(
        '[steps.voice]\nkind = "text_to_speech"\nprovider = "elevenlabs"\nmodel = "eleven_multilingual_v2"\n'
        f'voice = "Rachel"\ntext = "{text}"\noutput = "voice.mp3"\n\n'
        '[steps.talk]\nkind = "avatar"\nprovider = "fal"\nmodel = "kling-avatar"\nimage = "face.png"\n'
        'audio = "${steps.voice}"\noutput = "talk.mp4"\n'
    )
    talk = {e.name: e for e in forecast(recipe, env=world.env).entries}["talk"].estimate
    # 300 characters at 15 a second: 20 s of speech, at $0.115 a second of it
    assert (talk.usd, talk.formula) == (pytest.approx(2.30), "20 s x $0.115/s")

    # once made, the speech is measured: where it lies, or in the store once its output is deleted
    assert acpbuild.run(recipe, env=world.env).success
    recipe.write_text(recipe.read_text().replace('image = "face.png"', 'image = "face.png"\nprompt = "smile"'))
    measured = {e.name: e for e in forecast(recipe, env=world.env).entries}["talk"].estimate
    assert measured.formula != talk.formula and not measured.guess
    (tmp_path / "out" / "voice.mp3").unlink()
    plan = {e.name: e for e in forecast(recipe, env=world.env).entries}
    assert plan["voice"].state == "restorable" and plan["talk"].estimate == measured


def test_the_plan_reads_an_input_text_from_the_store_when_its_output_was_deleted(world: World, tmp_path: Path) -> None:
    from acpbuild.engine.workflow import forecast

    recipe = tmp_path / "told.toml"
    recipe.write_text(SCRIPT_AND_VOICE.format(prompt="Narrate a lighthouse at dawn"))
    assert acpbuild.run(recipe, env=world.env).success
    script = tmp_path / "out" / "script.txt"
    written = len(script.read_text(encoding="utf-8"))  # ElevenLabs bills characters, not bytes
    script.unlink()  # still in the store: restorable
    recipe.write_text(recipe.read_text().replace('text = "${steps.script}"', 'text = "${steps.script}!"'))
    plan = {e.name: e for e in forecast(recipe, env=world.env).entries}
    assert (plan["script"].state, plan["voice"].state) == ("restorable", "run")
    assert plan["voice"].estimate.usd == pytest.approx((written + 1) * 0.10 / 1000)


def test_a_per_image_price_shows_one_image_and_a_set_duration_is_no_guess() -> None:
    # Gemini's image model: $0.039 an image (money/prices); kling: $0.28 a second of what is asked for
    image = estimate("google", providers.catalogue("google")["gemini-2.5-flash-image"], "text_to_image", {"prompt": "a quay"})
    assert (image.usd, image.formula, image.guess) == (pytest.approx(0.039), "1 image x $0.039", "")
    clip = estimate("fal", providers.catalogue("fal")["kling"], "text_to_video", {"prompt": "waves", "duration_s": 5})
    assert (clip.formula, clip.guess) == ("5 s x $0.28/s", "")


def test_a_text_expected_from_its_history_keeps_within_its_max_tokens_only_when_paid() -> None:
    wrote = Expected(2000, 600, "as its last run wrote")
    paid = expected_text("text", {"max_tokens": 100}, paid=True, expect=wrote)
    assert (paid.chars, paid.max_chars) == (400, 400)  # 100 tokens of 4 characters at most
    free = expected_text("text", {"max_tokens": 100}, paid=False, expect=wrote)
    assert (free.chars, free.max_chars) == (2000, None)  # a local text is as long as it was


def test_the_actual_cost_of_an_unpriced_model_is_unknown() -> None:
    from acpbuild.money.prices import actual_cost

    assert actual_cost("fal", "no-such-model", None, {"images": 1}, {}, True) is None
