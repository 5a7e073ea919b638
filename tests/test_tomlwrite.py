"""The TOML writer behind `acpbuild import` and `acpbuild new`: what it writes reads back the same."""

from __future__ import annotations

import math
from typing import Any

import pytest
import tomli

from acpbuild.cli.tomlwrite import key, value


@pytest.mark.parametrize(
    "item",
    [
        'quotes " and \\ backslashes',  # escaped as TOML basic strings do
        "tab\tnew\nline and DEL \x7f",  # control characters, DEL included, escaped
        "ünïcödé and emoji 🎬",  # kept as they are
        "$${ stays, ${steps.x} too",  # the writer does not interpret references
        0, -7, 3.25, 1e-9, True, False,
        ["a", 1, 2.5, [True]],
        {"plain": 1, "needs quotes": "x", "dotted.key": [1]},
    ],
)
def test_every_value_reads_back_unchanged(item: Any) -> None:
    assert tomli.loads(f"v = {value(item)}")["v"] == item


@pytest.mark.parametrize(("name", "bare"), [("cover", True), ("b-2", True), ("my step", False), ("a.b", False), ("ü", False)])
def test_keys_are_bare_only_when_they_can_be(name: str, bare: bool) -> None:
    written = key(name)
    assert (written == name) is bare
    assert tomli.loads(f"{written} = 1") == {name: 1}


def test_special_floats_and_none() -> None:
    assert math.isnan(tomli.loads(f"v = {value(float('nan'))}")["v"])
    assert tomli.loads(f"v = {value(float('-inf'))}")["v"] == float("-inf")
    assert tomli.loads(f"v = {value(None)}")["v"] == ""
    assert tomli.loads(f"v = {value({'skip': None, 'keep': 1})}")["v"] == {"keep": 1}
