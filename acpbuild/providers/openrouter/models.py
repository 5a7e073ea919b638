"""The OpenRouter catalogue: chat models, and the parameters each one accepts.

Catalogue keys are OpenRouter's own model ids, so a recipe's
``model = "openai/gpt-4o-mini"`` is what reaches the API. Output limits are the
models' published maximums; where they depend on the upstream provider
OpenRouter routes to, the bound is a common one. Parameter names are the
recipe's; :mod:`acpbuild.providers.openrouter.adapter` turns them into the
chat-completion request. Prices live in ``acpbuild/money/prices/openrouter.toml``.

This module imports nothing from the SDK.
"""

from __future__ import annotations

from typing import Any

from acpbuild.provider import Model, Param

TEXT = "text"
VISION = "image_understanding"


def _params(
    *,
    max_tokens: int,
    default_max_tokens: int = 4096,
    temperature_max: float | None = 2.0,
    top_p: bool = True,
    seed: bool = True,
    efforts: tuple[str, ...] = (),
    vision: bool = False,
) -> dict[str, Param]:
    """The parameters one model accepts. Those a model ignores or refuses are left out."""
    params: dict[str, Param] = {
        "prompt": Param("str", required=True, help="the user message"),
        "system": Param("str", help="a system message sent before the prompt"),
        "max_tokens": Param(
            "int",
            default=default_max_tokens,
            min=1,
            max=max_tokens,
            help="upper bound on output tokens (reasoning tokens count too); bounds the cost",
        ),
    }
    if temperature_max is not None:
        params["temperature"] = Param(
            "float", min=0.0, max=temperature_max, help="sampling temperature; lower is steadier"
        )
    if top_p:
        params["top_p"] = Param("float", min=0.0, max=1.0, help="nucleus sampling mass")
    if seed:
        params["seed"] = Param(
            "int", min=0, max=2**31 - 1, help="best-effort deterministic sampling"
        )
    if efforts:
        params["reasoning_effort"] = Param(
            "str",
            choices=efforts,
            help="how much the model thinks first (OpenRouter's reasoning.effort)",
        )
    if vision:
        params["image"] = Param(
            "image",
            required=True,
            kinds=(VISION,),
            help="a PNG, JPEG, WebP or GIF file the prompt asks about",
        )
    return params


def _model(model_id: str, description: str, *, vision: bool, **kw: Any) -> Model:
    endpoints = {TEXT: model_id, VISION: model_id} if vision else {TEXT: model_id}
    return Model(model_id, endpoints, _params(vision=vision, **kw), description)


CATALOGUE: dict[str, Model] = {
    m.name: m
    for m in (
        _model(
            "google/gemini-2.5-flash",
            "Gemini 2.5 Flash: fast, cheap, multimodal, optional thinking.",
            vision=True,
            max_tokens=65535,
            efforts=("low", "medium", "high"),
        ),
        _model(
            "anthropic/claude-sonnet-4.5",
            "Claude Sonnet 4.5: strong writing and reasoning, reads images.",
            vision=True,
            max_tokens=64000,
            # Anthropic accepts temperature 0..1 and not together with top_p;
            # it has no seed.
            temperature_max=1.0,
            top_p=False,
            seed=False,
            efforts=("low", "medium", "high"),
        ),
        _model(
            "openai/gpt-4o-mini",
            "GPT-4o mini: small, cheap, reads images.",
            vision=True,
            max_tokens=16384,
        ),
        _model(
            "openai/gpt-5-mini",
            "GPT-5 mini: a reasoning model; reads images.",
            vision=True,
            max_tokens=128000,
            # Reasoning tokens come out of max_tokens, so the default leaves room.
            default_max_tokens=16384,
            # OpenAI's reasoning models refuse temperature and top_p.
            temperature_max=None,
            top_p=False,
            efforts=("minimal", "low", "medium", "high"),
        ),
        _model(
            "meta-llama/llama-3.3-70b-instruct",
            "Llama 3.3 70B Instruct: open weights, text only.",
            vision=False,
            max_tokens=16384,
        ),
        _model(
            "deepseek/deepseek-chat",
            "DeepSeek V3 chat: cheap and capable, text only.",
            vision=False,
            max_tokens=16384,
        ),
    )
}
