"""The price table format: how a provider says what each of its models costs.

One TOML document per provider, one table per catalogued model::

    [models."gen4-turbo"]
    unit = "second"            # one of UNITS
    usd = 0.05                 # per unit
    source = "runwayml.com/pricing: 5 credits a second, $0.01 a credit"
    date = "2026-11"

    [models."gen4-turbo".by.resolution]   # optional: a parameter's value -> rate factor
    "1080p" = 1.6

Token-priced models (``unit = "1m_tokens"``) give ``input_usd`` and ``output_usd``
instead of ``usd``. ``usd_with_audio`` is the rate when ``generate_audio`` is
true; ``round_up`` bills whole units. The built-in providers' tables are in
``acpbuild/money/prices/``; a plugin names its own in ``Provider.prices``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: what a price is counted in, and the usage each bills (images and requests count 1 when unsaid)
UNITS = ("image", "megapixel", "second", "1k_characters", "1m_tokens", "request")

#: every field a model's price table may hold, and the type of its value
FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "unit": str,
    "usd": (int, float),
    "usd_with_audio": (int, float),
    "input_usd": (int, float),
    "output_usd": (int, float),
    "round_up": bool,
    "source": str,
    "date": str,
    "by": dict,
}


def table_problems(
    table: Mapping[str, Any], models: Mapping[str, object], *, paid: bool
) -> list[str]:
    """What is wrong with a provider's price ``table`` (its ``models`` mapping) for its catalogue ``models``.

    Every catalogued model of a paid provider has a price; every priced model is
    catalogued; each price has a known unit, a figure, and only known fields of
    the right types.
    """
    problems: list[str] = []
    for name in models:
        if paid and name not in table:
            problems.append(f"model {name!r} has no price")
    for name, fields in table.items():
        if name not in models:
            problems.append(f"price for {name!r}, which is not in the catalogue")
            continue
        if not isinstance(fields, Mapping):
            problems.append(f"price for {name!r} is not a table")
            continue
        for key, value in fields.items():
            want = FIELDS.get(key)
            if want is None:
                problems.append(f"price for {name!r} has an unknown field {key!r}")
            elif not isinstance(value, want) or (want != bool and isinstance(value, bool)):
                problems.append(f"price for {name!r}: {key} = {value!r} has the wrong type")
        unit = fields.get("unit")
        if unit not in UNITS:
            problems.append(f"price for {name!r}: unit {unit!r} is not one of {', '.join(UNITS)}")
        elif unit == "1m_tokens":
            if "input_usd" not in fields and "output_usd" not in fields:
                problems.append(f"price for {name!r} gives neither input_usd nor output_usd")
        elif "usd" not in fields:
            problems.append(f"price for {name!r} gives no usd")
        for param, factors in (fields.get("by") or {}).items():
            if not isinstance(factors, Mapping) or not all(
                isinstance(f, (int, float)) and not isinstance(f, bool) for f in factors.values()
            ):
                problems.append(f"price for {name!r}: by.{param} must map values to numbers")
    return problems
