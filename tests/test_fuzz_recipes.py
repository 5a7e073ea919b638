"""No recipe makes acpbuild crash: mutated recipes exit 0 or 2 with acpbuild's own error, never a traceback.

Hypothesis starts from every valid recipe that ships (``recipes/`` and
``tests/recipes/``) and mutates it: keys deleted, values swapped for tables,
lists, huge or non-finite numbers, unicode, NUL bytes, paths that climb out,
absolute globs, references to missing steps and items, nesting thousands of
levels deep, and bytes cut or inserted in the text. ``acpbuild validate`` runs
in-process on each. The suite runs a fixed, derandomised number of examples;
``ACPBUILD_FUZZ_EXAMPLES=5000`` (or the slow test) runs more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acpbuild.cli import main

ROOT = Path(__file__).parent.parent
EXAMPLES = int(os.environ.get("ACPBUILD_FUZZ_EXAMPLES", "300"))

# the recipes mutations start from, and the folders whose data files they read
SOURCES = {"recipes": ROOT / "recipes", "tests_recipes": ROOT / "tests" / "recipes"}


@dataclass(frozen=True)
class Deep:
    """A value nested ``depth`` levels deep: written as text, since building it would recurse."""

    depth: int
    table: bool = False


# -- a TOML writer for what the mutations make (tomli-w and tomlkit refuse some of it) -------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, Deep):
        if value.table:
            return "{ a = " * value.depth + "1" + " }" * value.depth
        return "[" * value.depth + "1" + "]" * value.depth
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def dump(doc: dict[str, Any]) -> str:
    """``doc`` as TOML: non-empty tables under headers, everything else inline."""
    lines: list[str] = []

    def table(path: tuple[str, ...], data: dict[str, Any]) -> None:
        if path:
            lines.append("[" + ".".join(_key(p) for p in path) + "]")
        subtables = []
        for key, value in data.items():
            if isinstance(value, dict) and value and path is not None:
                subtables.append((key, value))
            else:
                lines.append(f"{_key(key)} = {_value(value)}")
        for key, value in subtables:
            table((*path, key), value)

    table((), doc)
    return "\n".join(lines) + "\n"


# -- the seeds -------------------------------------------------------------------------------------
# every feature in one recipe, so that mutations meet [defaults], each foreach source and a group
FEATURES = """
[recipe]
name = "features"
output_dir = "../out/features"
budget_usd = 1.0
jobs = 4
concurrency = { local = 2 }

[vars]
topic = "a kite"
n = 3

[defaults.text_to_image]
provider = "local"
model = "pillow"
seed = 3

[steps.script]
kind = "text"
prompt = "About ${topic}"
sentences = "${n}"
output = "script.txt"

[steps.cards]
kind = "text_to_image"
foreach = "catalog.csv"
prompt = "${item.name}"
output = "cards/${item.id}.png"

[steps.notes]
kind = "text"
foreach = "scripts/*.md"
prompt = "${item.text}"
output = "notes/${item.stem}.txt"

[steps.inline]
kind = "text"
foreach = [{ id = "a", p = "one" }, { id = "b", p = "two" }]
prompt = "${item.p}"
output = "inline/${item.id}.txt"

[steps.alt1]
kind = "text"
prompt = "first ${steps.script}"
output = "alt1.txt"

[steps.alt2]
kind = "text"
prompt = "second"
output = "alt2.txt"

[groups.best]
steps = ["alt1", "alt2"]
merge = "first_success"
output = "best.txt"

[steps.voice]
kind = "text_to_speech"
text = "${steps.best}"
output = "voice.mp3"

[steps.clip]
kind = "image_to_video"
image = "${steps.cards}"
foreach = "${steps.cards}"
output = "clips/${item.id}.mp4"
"""


def _seeds() -> list[tuple[str, str, dict[str, Any]]]:
    found = [("recipes", "features", tomli.loads(FEATURES))]
    for folder, path in SOURCES.items():
        for recipe in sorted(path.glob("*.toml")):
            if recipe.name.startswith("bad_"):
                continue
            found.append((folder, recipe.name, tomli.loads(recipe.read_text(encoding="utf-8"))))
    return found


SEEDS = _seeds()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git work tree holding copies of both recipe folders (the shipped ones write to ../out)."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / ".git").mkdir()
    for folder, path in SOURCES.items():
        shutil.copytree(path, root / folder, symlinks=False)
    (root / "recipes" / "scripts").mkdir()
    (root / "recipes" / "scripts" / "a.md").write_text("A script.", encoding="utf-8")
    return root


# -- the mutations ---------------------------------------------------------------------------------
HOSTILE_STRINGS = [
    "",
    " ",
    "\0",
    "a\0b.txt",
    "../../outside.txt",
    "../../../../../../etc/passwd",
    "/etc/passwd",
    "/tmp/*.md",
    "/**/*.md",
    "**/*",
    "../*",
    "*.csv",
    "[",
    "${steps.missing}",
    "${steps.}",
    "${steps.script}",
    "${item.id}",
    "${item.nope}",
    "${nope}",
    "${env.HOME}",
    "${env.FAL_KEY}",
    "$${escaped}",
    "${",
    "nul\x00in.png",
    "😀🎬 ünïcödé ✓",
    "\u202e\u200b",
    "x" * 5000,
    "a" * 300 + ".txt",
    "out/../../x.png",
    "C:\\Windows\\x.txt",
    "foo=bar",
    "-rf",
]
HOSTILE_NUMBERS: list[Any] = [
    0,
    -1,
    10**23,
    -(10**23),
    2**63,
    2**64 + 1,
    2**32,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    0.5,
    True,
]

leaf = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_NUMBERS),
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
containers = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["a", "id", "kind", "output", "prompt", "model", "x y", ""]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)
# mostly single hostile values, now and then a table or list, rarely a deep one
value = st.one_of(
    leaf, leaf, leaf, containers, containers, st.builds(Deep, st.integers(min_value=30, max_value=3000), st.booleans())
)

# (key, value) set in a step table: the attacks the issue names, aimed where they bite
ATTACKS: list[tuple[str, Any]] = [
    ("foreach", "/tmp/*.md"),
    ("foreach", "/**/*"),
    ("foreach", "../*"),
    ("foreach", "../../../*.csv"),
    ("foreach", "nul\0.csv"),
    ("foreach", [{"id": "../../x"}]),
    ("foreach", [{"id": "/abs"}]),
    ("foreach", [{"id": {"a": 1}}]),
    ("foreach", [1, 2]),
    ("foreach", "${steps.missing}"),
    ("output", "../../x.txt"),
    ("output", "/tmp/x.txt"),
    ("output", "${item.id}.txt"),
    ("output", "a\0.txt"),
    ("model", {"a": 1}),
    ("model", [1]),
    ("provider", {"a": 1}),
    ("kind", ["text"]),
    ("seed", 10**23),
    ("seed", -1),
    ("seed", float("nan")),
    ("prompt", ""),
    ("prompt", "   "),
    ("text", ""),
    ("image", "a\0.png"),
    ("image", "/etc/passwd"),
    ("image", "${steps.missing}"),
    ("timeout_s", 1e300),
    ("timeout_s", float("inf")),
]

KEYS = [
    "kind", "provider", "model", "output", "prompt", "text", "seed", "foreach", "image", "video",
    "audio", "videos", "steps", "merge", "judge", "score", "output_dir", "store", "budget_usd", "jobs",
    "concurrency", "name", "timeout_s", "description", "duration_s", "width", "height", "voice",
]


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path and list index in ``doc``."""
    if isinstance(doc, dict):
        for key, val in doc.items():
            yield (*at, key)
            yield from _paths(val, (*at, key))
    elif isinstance(doc, list):
        for index, val in enumerate(doc):
            yield (*at, index)
            yield from _paths(val, (*at, index))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """(folder, file bytes): a seed recipe with one to four mutations."""
    folder, _, seed = draw(st.sampled_from(SEEDS))
    doc = tomli.loads(dump(seed))  # a fresh copy
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = list(_paths(doc))
        op = draw(st.sampled_from(["delete", "replace", "replace", "add", "rename", "attack", "attack"]))
        tables = [p for p in paths if len(p) == 2 and p[0] in ("steps", "defaults", "groups", "recipe")]
        if op == "attack" and tables:
            target = _parent(doc, (*draw(st.sampled_from(tables)), None))
            if isinstance(target, dict):
                key, val = draw(st.sampled_from(ATTACKS))
                target[key] = copy.deepcopy(val)  # later mutations must not edit ATTACKS itself
            continue
        if op in ("add", "attack") or not paths:
            tables = [p for p in paths if isinstance(_parent(doc, (*p, None)), dict)]
            target = doc if not tables else _parent(doc, (*draw(st.sampled_from([(), *tables])), None))
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS) | st.text(max_size=10))] = draw(value)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(value)
        elif isinstance(parent, dict):  # rename: a misspelt or unknown key
            parent[draw(st.sampled_from(KEYS) | st.text(max_size=10))] = parent.pop(path[-1])
    data = dump(doc).encode("utf-8")
    # and now and then, damage the text itself
    damage = draw(st.sampled_from(["none"] * 12 + ["truncate", "nul", "bytes", "deep_line"]))
    if damage == "truncate":
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    elif damage == "nul":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + b"\0" + data[at:]
    elif damage == "bytes":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif damage == "deep_line":
        data += b"deep = " + b"[" * 5000 + b"]" * 5000 + b"\n"
    return folder, data


def test_the_writer_round_trips_every_seed() -> None:
    for _, name, seed in SEEDS:
        assert tomli.loads(dump(seed)) == seed, name


def _validate(project: Path, folder: str, data: bytes) -> None:
    path = project / folder / "fuzz.toml"
    path.write_bytes(data)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["validate", str(path)])
    assert code in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().startswith("acpbuild: error: ")


def _fuzz(project: Path, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated())
    def check(case: tuple[str, bytes]) -> None:
        _validate(project, *case)

    check()


def test_no_mutated_recipe_crashes_validate(project: Path) -> None:
    _fuzz(project, EXAMPLES)


@pytest.mark.slow
def test_no_mutated_recipe_crashes_validate_long_run(project: Path) -> None:
    _fuzz(project, max(EXAMPLES, 3000))


# -- crashers found by fuzzing, kept as plain cases -------------------------------------------
STEP = '[steps.a]\nkind = "text"\nprompt = "x"\noutput = "a.txt"\n'
CRASHERS = [
    # foreach over an absolute glob: pathlib's NotImplementedError
    '[steps.a]\nkind = "text"\nforeach = "/tmp/*.md"\nprompt = "x"\noutput = "a/${item.id}.txt"\n',
    # a NUL byte in output_dir: os's ValueError
    '[recipe]\noutput_dir = "o\\u0000ut"\n' + STEP,
    # a NUL byte in the store, an output, a foreach glob and an input file
    '[recipe]\nstore = "s\\u0000t"\n' + STEP,
    STEP.replace('"a.txt"', '"a\\u0000.txt"'),
    STEP.replace('prompt = "x"', 'foreach = "a\\u0000*.md"\nprompt = "x"').replace('"a.txt"', '"${item.id}.txt"'),
    '[steps.a]\nkind = "image_to_video"\nimage = "i\\u0000.png"\noutput = "a.mp4"\n',
    # a table where [defaults] names a model: TypeError, unhashable dict
    '[defaults.text]\nmodel = { a = 1 }\n' + STEP,
    # nesting deeper than tomli allows, and deeper than ours
    STEP + "deep = " + "[" * 3000 + "]" * 3000 + "\n",
    STEP + "deep = " + "[" * 100 + "]" * 100 + "\n",
    "[defaults.text]\n" + "x = " + "{ a = " * 200 + "1" + " }" * 200 + "\n" + STEP,
    # a foreach file name longer than the system allows: OSError ENAMETOOLONG (found by the long run)
    STEP.replace('prompt = "x"', 'foreach = "' + "x" * 5000 + '"\nprompt = "x"').replace('"a.txt"', '"${item.id}.txt"'),
    STEP.replace('prompt = "x"', 'foreach = "' + "x" * 5000 + '.csv"\nprompt = "x"').replace('"a.txt"', '"${item.id}.txt"'),
    '[steps.a]\nkind = "image_to_video"\nimage = "' + "x" * 5000 + '.png"\noutput = "a.mp4"\n',
    # an empty glob
    STEP.replace('prompt = "x"', 'foreach = ""\nprompt = "x"').replace('"a.txt"', '"${item.id}.txt"'),
]


@pytest.mark.parametrize("text", CRASHERS, ids=[f"crasher{i}" for i in range(len(CRASHERS))])
def test_former_crashers_are_recipe_errors(project: Path, text: str) -> None:
    _validate(project, "tests_recipes", text.encode("utf-8"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["validate", str(project / "tests_recipes" / "fuzz.toml")]) == 2
