"""The step key: what decides a generation's result changes it, nothing else does."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import xxhash

from acpbuild.engine.context import Context
from acpbuild.keys import canonical, key_of
from acpbuild.providers.local import LocalProvider
from acpbuild.recipe import load_recipe

# One recipe with a step for every way a key gets its inputs: vars and env in a
# prompt (script), a text upstream inlined (voice), a paid model (cover), an
# input file (grey) and a media upstream plus a float parameter (clip).
BASE = """\
[vars]
topic = "a red kite"

[steps.script]
kind = "text"
prompt = "Narrate ${topic} in a ${env.MOOD} voice"
seed = 1
output = "script.txt"

[steps.voice]
kind = "text_to_speech"
text = "${steps.script}"
speed = 160
output = "voice.mp3"

[steps.cover]
kind = "text_to_image"
provider = "fal"
model = "flux-dev"
prompt = "${topic} over the hills"
seed = 7
output = "cover.png"

[steps.grey]
kind = "image_to_image"
image = "photo.png"
operation = "grayscale"
output = "grey.png"

[steps.clip]
kind = "image_to_video"
image = "${steps.cover}"
duration_s = 6.0
output = "clip.mp4"
"""

COVER = """\
[steps.cover]
kind = "text_to_image"
provider = "fal"
model = "flux-dev"
prompt = "${topic} over the hills"
seed = 7
output = "cover.png"
"""


@dataclass
class Setup:
    """Everything outside the code that a key could depend on."""

    recipe: str = BASE
    env: dict[str, str] = field(default_factory=lambda: {"MOOD": "calm"})
    files: dict[str, bytes] = field(default_factory=lambda: {"photo.png": b"photo bytes"})
    # upstream step -> its output's text (text steps) or digest (media steps)
    upstream: dict[str, str] = field(
        default_factory=lambda: {"script": "A kite circles.", "cover": "c0" * 16}
    )
    adapter: str | None = None
    # step -> fields replaced on the loaded Step, for what a recipe cannot change alone
    patch: dict[str, dict[str, Any]] = field(default_factory=dict)


def edit(old: str, new: str, text: str = BASE) -> str:
    """``text`` with ``old`` replaced by ``new``; ``old`` must be there exactly once."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def keys(setup: Setup, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The key of every step of ``setup``'s recipe, built in the directory ``where``."""
    where.mkdir()
    for name, data in setup.files.items():
        (where / name).write_bytes(data)
    path = where / "acpbuild.toml"
    path.write_text(setup.recipe, encoding="utf-8")
    recipe = load_recipe(path, env=setup.env)

    def upstream(name: str) -> tuple[Path, str]:
        value = setup.upstream[name]
        if recipe.steps[name].media == "text":
            text_file = where / f"{name}.upstream"
            text_file.write_text(value, encoding="utf-8")
            return text_file, xxhash.xxh3_128_hexdigest(value.encode())
        return where / f"{name}.upstream", value

    # the adapter's version is a class attribute; patch it only while keying this setup
    with monkeypatch.context() as patched:
        if setup.adapter is not None:
            patched.setattr(LocalProvider, "version", setup.adapter)
        ctx = Context(recipe, env=setup.env)
        try:
            found = {}
            for name, step in recipe.steps.items():
                step = dataclasses.replace(step, **setup.patch.get(name, {}))
                found[name] = ctx.prepare(step, upstream).key
            return found
        finally:
            ctx.close()


def _with(**changes: Any) -> Callable[[], Setup]:
    return lambda: dataclasses.replace(Setup(), **changes)


# (step whose key is compared, how the setup changes)
MUST_CHANGE = [
    # the prompt is what the model sees
    pytest.param("cover", _with(recipe=edit("over the hills", "over the sea")), id="prompt"),
    # a different seed is a different picture
    pytest.param("cover", _with(recipe=edit("seed = 7", "seed = 8")), id="seed"),
    # a value other than the model's default is another request
    pytest.param(
        "cover", _with(recipe=edit("seed = 7\n", "seed = 7\nnum_inference_steps = 12\n")), id="non-default"
    ),
    # same provider and parameters, another model
    pytest.param("cover", _with(recipe=edit('"flux-dev"', '"flux-schnell"')), id="model"),
    # same model name and parameters, another provider
    pytest.param("cover", _with(patch={"cover": {"provider": "google"}}), id="provider"),
    # same model and parameters, another kind (fal's video models serve two with one name)
    pytest.param("clip", _with(patch={"clip": {"kind": "text_to_video"}}), id="kind"),
    # a var is interpolated into the prompt before keying
    pytest.param("cover", _with(recipe=edit('"a red kite"', '"a blue kite"')), id="var-in-prompt"),
    # an ${env.X} is interpolated into the prompt too
    pytest.param("script", _with(env={"MOOD": "stormy"}), id="env-in-prompt"),
    # an input file enters by content, not by name
    pytest.param("grey", _with(files={"photo.png": b"another photo"}), id="input-file-content"),
    # a media upstream enters by digest
    pytest.param(
        "clip",
        _with(upstream={"script": "A kite circles.", "cover": "c1" * 16}),
        id="upstream-digest",
    ),
    # a text upstream enters as the text the provider will see
    pytest.param(
        "voice", _with(upstream={"script": "A kite dives.", "cover": "c0" * 16}), id="upstream-text"
    ),
    # the suffix decides the bytes: mp3 and wav are different generations
    pytest.param("voice", _with(recipe=edit('"voice.mp3"', '"voice.wav"')), id="format"),
    # a new adapter may turn the same parameters into a different result
    pytest.param("grey", _with(adapter="2"), id="adapter-version"),
]


@pytest.mark.parametrize(("step", "changed"), MUST_CHANGE)
def test_key_changes_with_what_decides_the_result(
    step: str, changed: Callable[[], Setup], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = keys(Setup(), tmp_path / "before", monkeypatch)
    after = keys(changed(), tmp_path / "after", monkeypatch)
    assert before[step] != after[step]


REORDERED = edit(
    COVER,
    """\
[steps.cover]
output = "cover.png"
seed = 7
prompt = "${topic} over the hills"
model = "flux-dev"
provider = "fal"
kind = "text_to_image"
""",
)

REFORMATTED = edit(
    COVER,
    """\
# the cover, written as one inline table with a comment and odd spacing


[steps]
cover   =   {   kind="text_to_image",provider='fal' , model = "flux-dev",   prompt = '${topic} over the hills', seed=7, output="cover.png" }   # inline
""",
)

IN_DEFAULTS = edit("seed = 7\n", "", BASE) + "\n[defaults.text_to_image]\nseed = 7\n"

# (step before, step after, how the setup changes)
MUST_NOT_CHANGE = [
    # renaming the output file (same suffix) costs nothing
    pytest.param(
        "cover", "cover", _with(recipe=edit('"cover.png"', '"art/poster.png"')), id="output-name"
    ),
    # a description is for people
    pytest.param(
        "cover",
        "cover",
        _with(recipe=edit("seed = 7\n", 'seed = 7\ndescription = "the poster"\n')),
        id="description",
    ),
    # how long we wait is not what we get
    pytest.param(
        "cover",
        "cover",
        _with(recipe=edit("seed = 7\n", "seed = 7\ntimeout_s = 30\n")),
        id="timeout",
    ),
    # TOML key order
    pytest.param("cover", "cover", _with(recipe=REORDERED), id="key-order"),
    # whitespace, comments, quoting style, inline tables
    pytest.param("cover", "cover", _with(recipe=REFORMATTED), id="reformatted"),
    # 6 and 6.0 seconds are one duration
    pytest.param(
        "clip", "clip", _with(recipe=edit("duration_s = 6.0", "duration_s = 6")), id="int-vs-float"
    ),
    # a value set through [defaults.KIND] is the same value
    pytest.param("cover", "cover", _with(recipe=IN_DEFAULTS), id="moved-to-defaults"),
    # writing out a model's default value sends the same request
    pytest.param(
        "cover",
        "cover",
        _with(recipe=edit("seed = 7\n", "seed = 7\nnum_inference_steps = 28\n")),
        id="default-written-out",
    ),
    # API keys reach providers through the environment, never the key
    pytest.param(
        "cover",
        "cover",
        _with(env={"MOOD": "calm", "FAL_KEY": "fal-secret-1234"}),
        id="api-key-in-env",
    ),
    # renaming a step (and nothing else) keeps its generation
    pytest.param(
        "grey", "mono", _with(recipe=edit("[steps.grey]", "[steps.mono]")), id="step-name"
    ),
    # an input file is keyed by content: moving the project elsewhere changes nothing
    pytest.param("grey", "grey", _with(), id="project-directory"),
]


@pytest.mark.parametrize(("step", "renamed", "changed"), MUST_NOT_CHANGE)
def test_key_ignores_what_does_not_decide_the_result(
    step: str,
    renamed: str,
    changed: Callable[[], Setup],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = keys(Setup(), tmp_path / "before", monkeypatch)
    after = keys(changed(), tmp_path / "after", monkeypatch)
    assert before[step] == after[renamed]


def test_no_step_key_is_shared_in_the_base_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # guards the tables above: every step really has a key of its own
    found = keys(Setup(), tmp_path / "base", monkeypatch)
    assert len(set(found.values())) == len(found)


def test_key_material_holds_no_secret_and_no_path(tmp_path: Path) -> None:
    env = {"MOOD": "calm", "FAL_KEY": "fal-secret-1234"}
    (tmp_path / "photo.png").write_bytes(b"photo bytes")
    path = tmp_path / "acpbuild.toml"
    path.write_text(BASE, encoding="utf-8")
    recipe = load_recipe(path, env=env)
    ctx = Context(recipe, env=env)
    try:
        text = canonical(ctx.prepare(recipe.steps["grey"], lambda name: (tmp_path, "00" * 16)).material)
    finally:
        ctx.close()
    assert "fal-secret-1234" not in text
    assert str(tmp_path) not in text
    assert json.loads(text)["params"]["image"] == {
        "digest": xxhash.xxh3_128_hexdigest(b"photo bytes")
    }


# (one way of writing the material, another way of writing the same material)
SAME_CANONICAL = [
    # key order at every depth
    ({"b": 1, "a": {"d": [1, 2], "c": "x"}}, {"a": {"c": "x", "d": [1, 2]}, "b": 1}),
    # integral floats are ints, also inside lists and tables
    ({"d": 6.0, "l": [2.0, {"x": 1.0}]}, {"d": 6, "l": [2, {"x": 1}]}),
    # tuples are lists
    ({"t": (1, 2)}, {"t": [1, 2]}),
]


@pytest.mark.parametrize(("one", "other"), SAME_CANONICAL)
def test_canonical_is_stable_and_sorted(one: dict[str, object], other: dict[str, object]) -> None:
    assert canonical(one) == canonical(other)
    assert key_of(one) == key_of(other)


def test_canonical_text_is_compact_sorted_json() -> None:
    text = canonical({"z": 0.5, "a": [True, None], "m": {"y": "é", "x": 6.0}})
    assert text == '{"a":[true,null],"m":{"x":6,"y":"é"},"z":0.5}'
    # and the same text every time it is asked
    assert {
        canonical({"z": 0.5, "a": [True, None], "m": {"y": "é", "x": 6.0}}) for _ in range(5)
    } == {text}


# (material, material that must key differently)
DIFFERENT_CANONICAL = [
    # a non-integral float is kept
    ({"x": 6.5}, {"x": 6}),
    # true is not 1
    ({"x": True}, {"x": 1}),
    # "6" is not 6
    ({"x": "6"}, {"x": 6}),
]


@pytest.mark.parametrize(("one", "other"), DIFFERENT_CANONICAL)
def test_canonical_keeps_distinct_values_distinct(
    one: dict[str, object], other: dict[str, object]
) -> None:
    assert key_of(one) != key_of(other)


def test_canonical_refuses_values_it_cannot_key() -> None:
    # a raw path would put a machine-specific location into the key
    with pytest.raises(TypeError):
        canonical({"image": Path("photo.png")})


def test_key_of_is_xxh3_128_of_canonical_json() -> None:
    mat = {"kind": "text", "params": {"prompt": "hi", "seed": 1.0}}
    key = key_of(mat)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert key == xxhash.xxh3_128_hexdigest(canonical(mat).encode("utf-8"))
    assert key == xxhash.xxh3_128_hexdigest(b'{"kind":"text","params":{"prompt":"hi","seed":1}}')


def _prepared(folder: Path, text: str, step: str, *, draft: bool = False) -> Any:
    """Step ``step`` of the recipe ``text``, keyed in ``folder`` (as a draft run would, with ``draft``);
    each step it reads stands at its output path with a digest made of its name's first letter."""
    from acpbuild.recipe.draft import draft_recipe

    path = folder / "acpbuild.toml"
    path.write_text(text, encoding="utf-8")
    recipe = load_recipe(path, env={})
    recipe = draft_recipe(recipe) if draft else recipe
    outputs = {name: recipe.output_of(name)[1] for name in recipe.steps}
    ctx = Context(recipe, env={})
    try:
        return ctx.prepare(recipe.steps[step], lambda name: (outputs[name], name[0] * 32))
    finally:
        ctx.close()


def test_a_keys_material_names_the_schema_kind_provider_model_and_adapter(tmp_path: Path) -> None:
    # what DESIGN.md puts in a key, under the names the ledger keeps and `plan`'s reasons read
    from acpbuild.keys import KEY_SCHEMA

    prepared = _prepared(tmp_path, '[steps.line]\nkind = "text"\nprompt = "a harbour"\noutput = "line.txt"\n', "line")
    material = json.loads(canonical(prepared.material))
    assert set(material) == {"schema", "kind", "provider", "model", "adapter", "format", "params"}
    assert (material["schema"], material["kind"], material["provider"]) == (KEY_SCHEMA, "text", "local")
    model = load_recipe(tmp_path / "acpbuild.toml", env={}).steps["line"].model
    assert (material["model"], material["adapter"]) == (model, LocalProvider.version)
    assert (material["params"]["prompt"], material["format"]) == ("a harbour", ".txt")
    assert prepared.key == key_of(prepared.material)


def test_a_default_of_one_kind_written_out_or_left_out_gives_one_key(tmp_path: Path) -> None:
    # `fit` belongs to mux alone, with the default "longest": writing it out changes nothing
    final = (
        '[steps.clip]\nkind = "text_to_video"\nprompt = "waves"\noutput = "clip.mp4"\n\n'
        '[steps.voice]\nkind = "text_to_speech"\ntext = "hello"\noutput = "voice.wav"\n\n'
        '[steps.final]\nkind = "mux"\nvideo = "${{steps.clip}}"\naudio = "${{steps.voice}}"\n{fit}output = "final.mp4"\n'
    )
    left_out = _prepared(tmp_path, final.format(fit=""), "final")
    written_out = _prepared(tmp_path, final.format(fit='fit = "longest"\n'), "final")
    assert left_out.params["fit"] == "longest"
    assert left_out.key == written_out.key


def test_a_draft_stand_in_never_shares_a_key_with_the_same_local_step(tmp_path: Path) -> None:
    # a draft of a paid step is a local step with the same parameters: only draft_of tells them
    # apart, so a real local step never restores a draft (and a draft never a real one)
    cover = '[steps.cover]\nkind = "text_to_image"\nprompt = "a harbour"\noutput = "cover.png"\n'
    paid = cover.replace('kind = "text_to_image"', 'kind = "text_to_image"\nprovider = "fal"\nmodel = "flux-schnell"')
    draft, local = _prepared(tmp_path, paid, "cover", draft=True), _prepared(tmp_path, cover, "cover")
    assert draft.material["draft_of"] == "fal/flux-schnell"
    assert {k: v for k, v in draft.material.items() if k != "draft_of"} == local.material
    assert draft.key != local.key
