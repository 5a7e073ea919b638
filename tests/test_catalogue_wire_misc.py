"""Every value the catalogue lets a recipe give reaches the strict emulator, and is accepted.

For ElevenLabs, OpenRouter and Gemini (Veo is tested apart), each catalogued
model and each kind it serves is sent, through the adapter's ``generate`` and
the real SDK (``elevenlabs``, ``openai``, ``google-genai``), once with every
range at its minimum, once with every range at its maximum, and once per choice
of each enumerated parameter and per image format the adapter reads. The
emulators refuse what the real APIs refuse (their docstrings give the sources),
so a catalogue value the real API would refuse fails here.

The second half checks the emulators themselves: each refuses, through the
real SDK, what its API refuses, with that API's status and error shape.
"""

from __future__ import annotations

import gc
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from acpbuild.provider import Job, Model, Provider
from acpbuild.providers.elevenlabs.adapter import ElevenLabsProvider
from acpbuild.providers.google import models as google_models
from acpbuild.providers.google.gemini import GoogleProvider
from acpbuild.providers.openrouter.adapter import OpenRouterProvider
from tests.emulators import Journal
from tests.emulators import elevenlabs as el
from tests.emulators import google as gg
from tests.emulators import openrouter as orr

FAST = {"ACPBUILD_RETRY_BASE_S": "0.01", "ACPBUILD_POLL_INTERVAL_S": "0.02"}
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # what the adapters read (wire.image_mime)

#: a value for each free-text parameter, per parameter name; a new one fails until added
TEXTS = {
    "text": "The lighthouse keeper counts the ships.",
    "prompt": "Describe a lighthouse at dusk.",
    "system": "Answer in one sentence.",
    "voice": "Rachel",  # a name, looked up in the account's voices
    "language_code": "de",
}


@dataclass(frozen=True)
class Case:
    """One request: a model, a kind, the parameters a recipe would give, and the output suffix."""

    model: str
    kind: str
    params: dict[str, Any]
    suffix: str
    label: str

    @property
    def id(self) -> str:
        return f"{self.model}-{self.kind}-{self.label}"


def _suffix(provider: str, kind: str, params: dict[str, Any]) -> str:
    if provider == "elevenlabs":
        return "." + str(params.get("output_format", "mp3")).split("_")[0]
    return ".png" if kind in google_models.IMAGE_KINDS else ".txt"


def cases(
    provider: str, catalogue: dict[str, Model], kinds: tuple[str, ...] | None = None
) -> list[Case]:
    """The requests that together send every catalogue value once (see the module docstring)."""
    found: list[Case] = []
    for model in catalogue.values():
        for kind in model.kinds:
            if kinds is not None and kind not in kinds:
                continue
            params = model.params_for(kind)
            base: dict[str, Any] = {}
            for name, spec in params.items():
                if spec.required:
                    base[name] = "PNG" if spec.type == "image" else TEXTS[name]
            low, high = dict(base), dict(base)
            for name, spec in params.items():
                if spec.required or spec.choices:
                    continue
                if spec.type in ("int", "float"):
                    assert spec.min is not None and spec.max is not None, f"{model.name}.{name}"
                    low[name], high[name] = spec.min, spec.max
                    if spec.type == "int":
                        low[name], high[name] = int(spec.min), int(spec.max)
                elif spec.type == "bool":
                    low[name], high[name] = False, True
                elif spec.type == "str":
                    high[name] = TEXTS[name]
                else:
                    raise AssertionError(f"no sample for {model.name}.{name} ({spec.type})")
            variants = [("min", low), ("max", high)]
            for name, spec in params.items():
                for choice in spec.choices or ():
                    variants.append((f"{name}={choice}", {**base, name: choice}))
                if spec.type == "image":
                    for fmt in IMAGE_FORMATS[1:]:
                        variants.append((f"{name}={fmt.lower()}", {**base, name: fmt}))
            for label, chosen in variants:
                suffix = _suffix(provider, kind, chosen)
                found.append(Case(model.name, kind, chosen, suffix, label))
    return found


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small real image in each format an adapter reads."""
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for fmt in IMAGE_FORMATS:
        path = folder / f"input.{fmt.lower()}"
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), (20, 120, 200)).save(buffer, format=fmt)
        path.write_bytes(buffer.getvalue())
        paths[fmt] = path
    return paths


def run(provider: Provider, case: Case, images: dict[str, Path], out: Path) -> None:
    """Build the job as the runner does, check the catalogue takes it, and generate it."""
    model = provider.catalogue()[case.model]
    params = {
        k: str(images[v]) if model.params[k].type == "image" else v for k, v in case.params.items()
    }
    assert type(provider).problems(case.kind, model, params, case.suffix) == []
    full = {n: p.default for n, p in model.params_for(case.kind).items() if p.default is not None}
    full.update(params)
    job = Job(case.kind, model, full, out / f"out{case.suffix}", 30.0)
    provider.generate(job, Journal())
    assert job.output.stat().st_size > 0


# -- ElevenLabs --------------------------------------------------------------------------
EL_CASES = cases("elevenlabs", dict(ElevenLabsProvider({}).catalogue()))


@pytest.fixture(scope="module")
def el_server() -> Iterator[el.ElevenLabsEmulator]:
    with el.ElevenLabsEmulator() as emulator:
        yield emulator


@pytest.mark.parametrize("case", EL_CASES, ids=[c.id for c in EL_CASES])
def test_every_elevenlabs_value_is_accepted(
    case: Case, el_server: el.ElevenLabsEmulator, images: dict[str, Path], tmp_path: Path
) -> None:
    el_server.reset()
    env = {"ELEVENLABS_API_KEY": el.KEY, "ACPBUILD_ELEVENLABS_URL": el_server.url, **FAST}
    run(ElevenLabsProvider(env), case, images, tmp_path)
    assert el_server.submissions == 1


# -- OpenRouter --------------------------------------------------------------------------
OR_CASES = cases("openrouter", dict(OpenRouterProvider({}).catalogue()))


@pytest.fixture(scope="module")
def or_server() -> Iterator[orr.OpenRouterEmulator]:
    with orr.OpenRouterEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def or_provider(or_server: orr.OpenRouterEmulator) -> Iterator[dict[str, OpenRouterProvider]]:
    """One provider for the module, as one run has: it keeps its SDK clients for its life."""
    env = {"OPENROUTER_API_KEY": orr.KEY, "ACPBUILD_OPENROUTER_URL": f"{or_server.url}/api/v1"}
    held = {"provider": OpenRouterProvider({**env, **FAST})}
    yield held
    # Its clients close when it is collected; collect it here, not in a later test, where
    # the garbage collector may finalise a pooled socket before the client closes it.
    held.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.parametrize("case", OR_CASES, ids=[c.id for c in OR_CASES])
def test_every_openrouter_value_is_accepted(
    case: Case,
    or_server: orr.OpenRouterEmulator,
    or_provider: dict[str, OpenRouterProvider],
    images: dict[str, Path],
    tmp_path: Path,
) -> None:
    or_server.reset()
    run(or_provider["provider"], case, images, tmp_path)
    assert or_server.submissions == 1


# -- Gemini ------------------------------------------------------------------------------
GEMINI_CASES = cases(
    "google",
    dict(GoogleProvider({}).catalogue()),
    kinds=google_models.GEMINI_KINDS + google_models.IMAGE_KINDS,
)


@pytest.fixture(scope="module")
def gg_server() -> Iterator[gg.GoogleEmulator]:
    with gg.GoogleEmulator() as emulator:
        yield emulator


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini-api", "vertex"])
@pytest.mark.parametrize("case", GEMINI_CASES, ids=[c.id for c in GEMINI_CASES])
def test_every_gemini_value_is_accepted(
    case: Case, vertex: bool, gg_server: gg.GoogleEmulator, images: dict[str, Path], tmp_path: Path
) -> None:
    gg_server.reset()
    env = {"GEMINI_API_KEY": gg.KEY, "ACPBUILD_GOOGLE_URL": gg_server.url, **FAST}
    if vertex:  # ACPBUILD_GOOGLE_VERTEX=1 sends Gemini through Vertex AI
        env["ACPBUILD_GOOGLE_VERTEX"] = "1"
    run(GoogleProvider(env), case, images, tmp_path)
    assert len(gg_server.generations()) == 1


def test_the_sweep_covers_every_model_and_kind() -> None:
    # a catalogue entry the sweep skipped would be a value never checked against the API
    for provider, swept, kinds in (
        (ElevenLabsProvider, EL_CASES, None),
        (OpenRouterProvider, OR_CASES, None),
        (GoogleProvider, GEMINI_CASES, google_models.GEMINI_KINDS + google_models.IMAGE_KINDS),
    ):
        expected = {
            (m.name, k)
            for m in provider({}).catalogue().values()
            for k in m.kinds
            if kinds is None or k in kinds
        }
        assert {(c.model, c.kind) for c in swept} == expected


# -- the emulators refuse what the APIs refuse ----------------------------------------------
# Each row: what is sent (beyond a valid request), and the status and error code the API
# answers. The sources are in each emulator's docstring.
EL_REFUSALS = [
    ({"model_id": "eleven_monolingual_v2"}, 400, "model_not_found"),
    ({"model_id": "eleven_v3", "text": "a" * 5_001}, 400, "max_character_limit_exceeded"),
    ({"model_id": "eleven_flash_v2_5", "text": "a" * 40_001}, 400, "max_character_limit_exceeded"),
    ({"voice_settings": {"stability": 1.5}}, 400, "invalid_voice_settings"),
    ({"voice_settings": {"similarity_boost": -0.1}}, 400, "invalid_voice_settings"),
    ({"voice_settings": {"style": 1.01}}, 400, "invalid_voice_settings"),
    ({"voice_settings": {"speed": 0.69}}, 400, "invalid_voice_settings"),
    ({"voice_settings": {"speed": 1.21}}, 400, "invalid_voice_settings"),
    ({"model_id": "eleven_v3", "voice_settings": {"stability": 0.3}}, 400, "invalid_ttd_stability"),
    ({"voice_settings": {"use_speaker_boost": "yes"}}, 422, "bool_parsing"),
    ({"voice_settings": {"speed": "fast"}}, 422, "float_parsing"),
    ({"seed": 2**32}, 422, "less_than_equal"),
    ({"model_id": "eleven_multilingual_v2", "language_code": "hu"}, 400, "unsupported_language"),
    ({"model_id": "eleven_flash_v2", "language_code": "en"}, 400, "unsupported_language"),
    ({"model_id": "eleven_turbo_v2_5", "language_code": "sw"}, 400, "unsupported_language"),
    ({"model_id": "eleven_v3", "language_code": "eng"}, 400, "unsupported_language"),
    ({"output_format": "mp3_44100_127"}, 422, "enum"),
]


@pytest.mark.parametrize(
    ("sent", "status", "code"), EL_REFUSALS, ids=[c for _, _, c in EL_REFUSALS]
)
def test_the_elevenlabs_emulator_refuses_what_the_api_refuses(
    el_server: el.ElevenLabsEmulator, sent: dict[str, Any], status: int, code: str
) -> None:
    import httpx
    from elevenlabs.client import ElevenLabs
    from elevenlabs.core.api_error import ApiError

    request: dict[str, Any] = {"text": "Hello.", "model_id": "eleven_flash_v2_5", **sent}
    with httpx.Client() as http:
        client = ElevenLabs(api_key=el.KEY, base_url=el_server.url, httpx_client=http)
        with pytest.raises(ApiError) as info:
            b"".join(
                client.text_to_speech.convert(
                    "JBFqnCBsd6RMkjVDRZzb", request_options={"max_retries": 0}, **request
                )
            )
    assert info.value.status_code == status
    detail = info.value.body["detail"]
    assert (detail[0]["type"] if status == 422 else detail["status"]) == code


OR_REFUSALS = [
    ({"model": "acme/fake-1.0"}, 400, "is not a valid model ID"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"content": "no role"}]}, 400, "role"),
    ({"temperature": 2.1}, 400, "temperature"),
    ({"top_p": 1.5}, 400, "top_p"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"seed": 1.5}, 400, "seed"),
    ({"extra_body": {"reasoning": {"effort": "extreme"}}}, 400, "reasoning.effort"),
    ({"image": "ftp://example.com/a.png"}, 400, "image_url"),
    ({"image": "data:image/bmp;base64,Qk0="}, 400, "Unsupported image format"),
    ({"image": "https://example.com/a.png", "model": "deepseek/deepseek-chat"}, 404, "image input"),
    (
        {"image": "data:image/png;base64,iVBO", "model": "meta-llama/llama-3.3-70b-instruct"},
        404,
        "image input",
    ),
]


def _chat(server: orr.OpenRouterEmulator, sent: dict[str, Any]) -> Any:
    import openai

    request: dict[str, Any] = {"model": "openai/gpt-4o-mini", **sent}
    if "messages" not in request:
        content: Any = "What is in it?"
        if "image" in request:
            url = request.pop("image")
            content = [
                {"type": "text", "text": content},
                {"type": "image_url", "image_url": {"url": url}},
            ]
        request["messages"] = [{"role": "user", "content": content}]
    with openai.OpenAI(api_key=orr.KEY, base_url=f"{server.url}/api/v1", max_retries=0) as client:
        return client.chat.completions.create(**request)


@pytest.mark.parametrize(
    ("sent", "status", "says"), OR_REFUSALS, ids=[s for _, _, s in OR_REFUSALS]
)
def test_the_openrouter_emulator_refuses_what_openrouter_refuses(
    or_server: orr.OpenRouterEmulator, sent: dict[str, Any], status: int, says: str
) -> None:
    import openai

    with pytest.raises(openai.APIStatusError) as info:
        _chat(or_server, dict(sent))
    assert info.value.status_code == status
    assert says in info.value.body["message"] and info.value.body["code"] == status


@pytest.mark.parametrize(
    "sent",
    [
        # OpenRouter fetches an https image itself; the emulator counts it without fetching
        {"image": "https://upload.wikimedia.org/wikipedia/commons/a/a9/Example.jpg"},
        {"image": "data:image/gif;base64,R0lGODlhAQABAAAAACw="},
        # a conversation may end with the assistant's words (a prefill)
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]},
        # a parameter the model's provider does not support is dropped, not refused
        {"model": "openai/gpt-5-mini", "temperature": 0.2},
    ],
    ids=["https-image", "gif-data-url", "assistant-last", "ignored-parameter"],
)
def test_the_openrouter_emulator_accepts_what_openrouter_accepts(
    or_server: orr.OpenRouterEmulator, sent: dict[str, Any]
) -> None:
    answer = _chat(or_server, dict(sent))
    assert answer.choices[0].message.content.startswith(orr.REPLY_PREFIX)


GEMINI_REFUSALS = [
    ("gemini-1.5-flash", {}, 404, "NOT_FOUND", "is not found for API version v1"),
    (
        "gemini-2.5-flash",
        {"response_modalities": ["TEXT", "IMAGE"]},
        400,
        "INVALID_ARGUMENT",
        "response modalities",
    ),
    (
        "gemini-2.5-flash-image",
        {"response_modalities": ["AUDIO"]},
        400,
        "INVALID_ARGUMENT",
        "response modalities",
    ),
    ("gemini-2.5-pro", {"temperature": 2.1}, 400, "INVALID_ARGUMENT", "temperature value of 2.1"),
    ("gemini-2.5-flash-lite", {"top_p": 1.2}, 400, "INVALID_ARGUMENT", "topP value of 1.2"),
    (
        "gemini-2.5-flash",
        {"max_output_tokens": 65_537},
        400,
        "INVALID_ARGUMENT",
        "to 65537 (exclusive)",
    ),
    (
        "gemini-2.5-flash-image",
        {"max_output_tokens": 32_769},
        400,
        "INVALID_ARGUMENT",
        "to 32769 (exclusive)",
    ),
    (
        "gemini-2.5-flash-image",
        {"image_config": {"aspect_ratio": "7:3"}},
        400,
        "INVALID_ARGUMENT",
        "aspect ratio",
    ),
    (
        "gemini-2.5-flash",
        {"gif": True},
        400,
        "INVALID_ARGUMENT",
        "Unsupported MIME type: image/gif",
    ),
]


def _generate(
    server: gg.GoogleEmulator, model: str, config: dict[str, Any], *, vertex: bool
) -> Any:
    from google import genai
    from google.genai import types

    parts: list[Any] = [types.Part.from_text(text="Draw a lighthouse.")]
    if config.pop("gif", False):
        parts.insert(0, types.Part.from_bytes(data=b"GIF89a" + b"\0" * 8, mime_type="image/gif"))
    options = types.HttpOptions(base_url=server.url, api_version="v1beta1" if vertex else "v1")
    key = gg.CLOUD_KEY if vertex else gg.KEY
    with genai.Client(vertexai=vertex, api_key=key, http_options=options) as client:
        return client.models.generate_content(
            model=model,
            contents=[types.Content(role="user", parts=parts)],
            config=types.GenerateContentConfig(**config),
        )


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini-api", "vertex"])
@pytest.mark.parametrize(
    ("model", "config", "code", "status", "says"),
    GEMINI_REFUSALS,
    ids=[r[-1] for r in GEMINI_REFUSALS],
)
def test_the_gemini_emulator_refuses_what_gemini_refuses(
    gg_server: gg.GoogleEmulator,
    model: str,
    config: dict[str, Any],
    code: int,
    status: str,
    says: str,
    vertex: bool,
) -> None:
    from google.genai import errors

    if vertex and code == 404:
        says = f"Publisher Model `publishers/google/models/{model}` was not found"
    with pytest.raises(errors.ClientError) as info:
        _generate(gg_server, model, dict(config), vertex=vertex)
    assert (info.value.code, info.value.status) == (code, status)
    assert says in info.value.message


@pytest.mark.parametrize(
    ("model", "config", "image"),
    [
        ("gemini-2.5-flash-image", {}, True),  # the image model's default: text and an image
        ("gemini-2.5-flash-image", {"response_modalities": ["IMAGE"]}, True),
        (
            "gemini-2.5-flash",
            {"max_output_tokens": 65_536, "temperature": 2.0, "top_p": 1.0},
            False,
        ),
        ("gemini-2.5-flash-image", {"max_output_tokens": 32_768}, True),
    ],
    ids=["image-default", "image-only", "text-at-its-limits", "image-at-its-limit"],
)
def test_the_gemini_emulator_answers_what_a_model_makes(
    gg_server: gg.GoogleEmulator, model: str, config: dict[str, Any], image: bool
) -> None:
    response = _generate(gg_server, model, dict(config), vertex=False)
    parts = response.candidates[0].content.parts
    assert any(p.inline_data is not None for p in parts) is image
