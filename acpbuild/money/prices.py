"""Prices and costs: the registry shipped in ``acpbuild/money/prices/``, and what a generation cost.

One TOML file per provider, one table per catalogued model, each with its unit
(``image``, ``megapixel``, ``second``, ``1k_characters``, ``1m_tokens``,
``request``), the figure, and where and when the figure was found. A model whose
rate depends on a parameter (a video's resolution, an upscaler's target fps)
says so in a ``by`` table: ``[models."hailuo-02".by.resolution]`` maps each
value to the factor it multiplies the rate by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import tomli

from acpbuild import providers
from acpbuild.provider.prices import UNITS

__all__ = ["UNITS", "Price", "actual_cost", "cost", "cost_of_usage", "price_of", "registry", "shipped_tables"]


@dataclass(frozen=True)
class Price:
    provider: str
    model: str
    unit: str
    usd: float = 0.0
    usd_with_audio: float | None = None
    input_usd: float = 0.0
    output_usd: float = 0.0
    round_up: bool = False
    source: str = ""
    date: str = ""
    #: parameter -> its value -> the factor that value multiplies the rate by
    by: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def factors(self, params: Mapping[str, Any]) -> list[tuple[str, Any, float]]:
        """(parameter, value, factor) for each parameter of ``params`` that changes the rate."""
        found = []
        for name, table in self.by.items():
            value = params.get(name)
            factor = table.get(str(value), 1.0) if value is not None else 1.0
            if factor != 1.0:
                found.append((name, value, factor))
        return found

    def describe(self) -> str:
        if self.unit == "1m_tokens":
            return f"${self.input_usd:g} in / ${self.output_usd:g} out per 1M tokens"
        audio = f" (${self.usd_with_audio:g} with audio)" if self.usd_with_audio is not None else ""
        per = {"1k_characters": "1k characters"}.get(self.unit, self.unit)
        return f"${self.usd:g} per {per}{audio}"


@cache
def shipped_tables() -> dict[str, dict[str, dict[str, Any]]]:
    """The built-in providers' price tables as written: provider -> model -> fields."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    folder = resources.files("acpbuild.money") / "prices"
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            data = tomli.loads(entry.read_text(encoding="utf-8"))
            tables[entry.name.removesuffix(".toml")] = data.get("models", {})
    return tables


@cache
def registry() -> dict[tuple[str, str], Price]:
    """Every built-in price, by (provider, model)."""
    return {
        (provider, model): Price(provider=provider, model=model, **fields)
        for provider, table in shipped_tables().items()
        for model, fields in table.items()
    }


def price_of(provider: str, model: str) -> Price | None:
    """The price of ``model`` of ``provider``: acpbuild's registry for a built-in provider, the plugin's own table for a plugin."""
    found = registry().get((provider, model))
    if found is None and provider not in providers.BUILT_IN:
        found = _plugin_price(provider, model)
    return found


@cache
def _plugin_price(provider: str, model: str) -> Price | None:
    table = providers.plugin_prices(provider)
    fields = None if table is None else table.get(model)
    return None if fields is None else Price(provider=provider, model=model, **fields)


def _with_audio(params: Mapping[str, Any]) -> bool:
    return bool(params.get("generate_audio", False))


# The usage each unit is billed on; image and request count 1 when unsaid.
_QUANTITY = {"megapixel": "megapixels", "second": "seconds", "1k_characters": "characters", "1m_tokens": "output_tokens"}


def cost(price: Price, usage: Mapping[str, float], params: Mapping[str, Any]) -> float:
    """What a generation with this ``usage`` costs at ``price``."""
    if price.unit == "1m_tokens":
        return (usage.get("input_tokens", 0) * price.input_usd + usage.get("output_tokens", 0) * price.output_usd) / 1e6
    rate = price.usd_with_audio if price.usd_with_audio is not None and _with_audio(params) else price.usd
    for _, _, factor in price.factors(params):
        rate *= factor
    amount = {
        "image": usage.get("images", 1),
        "megapixel": usage.get("megapixels", 0),
        "second": usage.get("seconds", 0),
        "1k_characters": usage.get("characters", 0) / 1000,
        "request": usage.get("requests", 1),
    }[price.unit]
    if price.round_up:
        amount = math.ceil(amount - 1e-9)
    return amount * rate


def actual_cost(
    provider: str, model: str, reported: float | None, usage: Mapping[str, float], params: Mapping[str, Any], paid: bool
) -> float | None:
    """The provider's own figure where it gives one, else computed from the real output; None if unknown."""
    if not paid:
        return 0.0
    if reported is not None:
        return reported
    price = price_of(provider, model)
    return None if price is None else cost_of_usage(price, usage, params)


def cost_of_usage(price: Price, usage: Mapping[str, float], params: Mapping[str, Any]) -> float | None:
    """What an output with this ``usage`` cost at ``price``; None when the usage lacks what the unit counts."""
    needed = _QUANTITY.get(price.unit)
    if needed is not None and needed not in usage:
        return None  # the output did not say how much was made: the caller falls back
    return cost(price, usage, params)
