"""The TOML `acpbuild import` and `acpbuild new` write (through tomlkit): it reads back the same."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import tomli

from acpbuild.cli import importer, wizard
from acpbuild.provider import Param

VALUES = [
    'quotes " and \\ backslashes',  # escaped as TOML basic strings do
    "tab\tnew\nline and DEL \x7f",  # control characters, DEL included, escaped
    "ünïcödé and emoji 🎬",  # kept as they are
    "$${ stays, ${steps.x} too",  # the writer does not interpret references
    0, -7, 3.25, 1e-9, True, False,
    ["a", 1, 2.5, [True]],
    {"plain": 1, "needs quotes": "x", "dotted.key": [1]},
]


def _written(params: dict[str, Any], name: str = "s") -> dict[str, Any]:
    """The step ``new --interactive`` writes with ``params``, read back."""
    step = wizard.StepAnswers(name, "text", "local", "template", params, "a.txt")
    return tomli.loads(wizard.render([step], "r"))["steps"][name]


def _commented_out(value: Any, key: str = "v") -> str:
    """The line `import` writes for a parameter the model does not take, uncommented."""
    data = {"steps": [{"type": "llm", "model": "local", "params": {"prompt": "a", key: value}}]}
    text = importer.convert(data).text
    (line,) = (ln for ln in text.splitlines() if ln.endswith(f"takes no parameter {key!r}"))
    assert line.startswith("# ")
    return line.removeprefix("# ").split("  # not imported: ")[0]


@pytest.mark.parametrize("item", VALUES)
def test_every_value_new_writes_reads_back_unchanged(item: Any) -> None:
    assert _written({"v": item})["v"] == item


@pytest.mark.parametrize("item", VALUES)
def test_a_parameter_import_comments_out_reads_back_unchanged_uncommented(item: Any) -> None:
    # on one line, so a mapping is an inline table and a string keeps its newline escaped
    assert tomli.loads(_commented_out(item))["v"] == item


@pytest.mark.parametrize(
    ("name", "bare"), [("cover", True), ("b-2", True), ("my step", False), ("a.b", False), ("ü", False)]
)
def test_keys_are_bare_only_when_they_can_be(name: str, bare: bool) -> None:
    step = wizard.StepAnswers(name, "text", "local", "template", {}, "a.txt")
    text = wizard.render([step], "r")
    assert (f"[steps.{name}]" in text) is bare
    assert set(tomli.loads(text)["steps"]) == {name}
    assert tomli.loads(_commented_out(1, key=name)) == {name: 1}


def test_special_floats_and_null() -> None:
    assert math.isnan(_written({"v": float("nan")})["v"])
    assert _written({"v": float("-inf")})["v"] == float("-inf")
    # YAML's null has no TOML form: "" in a value, left out of a mapping
    assert tomli.loads(_commented_out(None))["v"] == ""
    assert tomli.loads(_commented_out({"skip": None, "keep": 1}))["v"] == {"keep": 1}


def test_new_refuses_a_list_toml_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(wizard.Invalid, match="not a valid list"):
        wizard.parse_value("[1, null]", Param("list"), {}, tmp_path)
    assert wizard.parse_value('[1, {"a": "b"}]', Param("list"), {}, tmp_path) == [1, {"a": "b"}]


def test_comments_are_kept() -> None:
    assert wizard.render([], "r").startswith("# Written by `acpbuild new --interactive`")
    data = {
        "unknown_setting": 1,
        "steps": [
            {"type": "llm", "model": "local", "params": {"prompt": "a", "mood": "calm"}},
            {"type": "tts", "model": "espeak", "enabled": False},
        ],
    }
    lines = importer.convert(data).text.splitlines()
    assert lines[:2] == [
        "# Imported by `acpbuild import` from pipeline.yaml (the older YAML pipeline format).",
        "# These change what the pipeline does, or need you before it runs:",
    ]
    assert "#   pipeline.yaml: ignored, as acpbuild has no use for them: unknown_setting (acpbuild has no such setting)" in lines
    assert '# mood = "calm"  # not imported: local/template (text) takes no parameter \'mood\'' in lines
    assert "# steps[1] has enabled: false in the pipeline; kept, commented out:" in lines
    assert '# provider = "local"' in lines  # the disabled step itself, commented out
