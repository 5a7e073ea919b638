"""`acpbuild info`, `graph` and `schema`: what they show, and that their output parses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomli
import tomlkit

from acpbuild import providers
from acpbuild.cli import diagram, main, scaffold
from acpbuild.errors import RecipeError
from acpbuild.provider import Param
from acpbuild.recipe import load_recipe
from acpbuild.recipe.kinds import KINDS, SUFFIXES
from acpbuild.recipe.schema import recipe_schema
from acpbuild.store import layout

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "tests" / "recipes"

CHAIN_EDGES = {("script", "voice"), ("cover", "clip"), ("clip", "final"), ("voice", "final")}

# A foreach family, a first_success group and a step name that needs escaping.
FAMILY_AND_GROUP = """\
[steps.card]
kind = "text"
foreach = [{ id = "intro", words = "first" }, { id = "outro", words = "second" }]
prompt = "${item.words}"
output = "cards/${item.id}.txt"

[steps.a]
kind = "text"
prompt = "one"
output = "a.txt"

[steps."b-2"]
kind = "text"
prompt = "two"
output = "b.txt"

[groups.pick]
steps = ["a", "b-2"]
merge = "first_success"
output = "pick.txt"

[steps.use]
kind = "text"
prompt = "${steps.pick}"
output = "use.txt"

[steps.more]
kind = "text"
foreach = "${steps.card}"
prompt = "${steps.card} and more"
output = "more/${item.id}.txt"
"""


def _mermaid_graph(text: str) -> tuple[dict[str, str], set[tuple[str, str, str]]]:
    """A tiny Mermaid flowchart parser: node id -> label, and (from, arrow, to) edges."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for line in lines[1:]:
        node = re.fullmatch(r'    (\w+)(?:\["([^"]*)"\]|\{\{"([^"]*)"\}\})', line)
        edge = re.fullmatch(r"    (\w+) (-->|-\.->) (\w+)", line)
        assert node or edge, f"unparsable line: {line!r}"
        if node:
            nodes[node[1]] = node[2] if node[2] is not None else "GROUP " + node[3]
        else:
            assert edge is not None
            edges.add((edge[1], edge[2], edge[3]))
    assert all(a in nodes and b in nodes for a, _, b in edges), "every edge joins declared nodes"
    return nodes, edges


def _dot_graph(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """A tiny dot parser for what acpbuild writes: node id -> label, and edges."""
    lines = text.splitlines()
    assert re.fullmatch(r'digraph "(?:[^"\\]|\\.)*" \{', lines[0]) and lines[-1] == "}"
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for line in lines[3:-1]:
        node = re.fullmatch(r'    (\w+) \[label="((?:[^"\\]|\\.)*)"(?:, shape=hexagon)?\];', line)
        edge = re.fullmatch(r"    (\w+) -> (\w+)(?: \[style=dashed\])?;", line)
        assert node or edge, f"unparsable line: {line!r}"
        if node:
            nodes[node[1]] = node[2]
        else:
            assert edge is not None
            edges.add((edge[1], edge[2]))
    assert all(a in nodes and b in nodes for a, b in edges), "every edge joins declared nodes"
    return nodes, edges


def test_graph_mermaid_has_exactly_the_chain_edges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(RECIPES / "chain.toml")]) == 0
    nodes, edges = _mermaid_graph(capsys.readouterr().out)
    assert nodes["n_voice"] == "voice<br/>text_to_speech<br/>local/espeak"
    assert {(a.removeprefix("n_"), b.removeprefix("n_")) for a, arrow, b in edges if arrow == "-->"} == CHAIN_EDGES
    assert len(edges) == len(CHAIN_EDGES)


def test_graph_dot_has_exactly_the_chain_edges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(RECIPES / "chain.toml"), "--format", "dot"]) == 0
    nodes, edges = _dot_graph(capsys.readouterr().out)
    assert set(nodes) == {"n_script", "n_voice", "n_cover", "n_clip", "n_final"}
    assert {(a.removeprefix("n_"), b.removeprefix("n_")) for a, b in edges} == CHAIN_EDGES


def test_graph_folds_foreach_families_and_draws_groups(tmp_path: Path) -> None:
    path = tmp_path / "fam.toml"
    path.write_text(FAMILY_AND_GROUP)
    recipe = load_recipe(path)
    nodes, edges = _mermaid_graph(diagram.mermaid(recipe))
    assert nodes["n_card"].startswith("card  x2 items<br/>")  # one node for the family
    assert nodes["n_pick"].startswith("GROUP pick<br/>group: first_success")
    assert {
        ("n_a", "-.->", "n_pick"),  # membership: dashed
        ("n_b_2", "-.->", "n_pick"),
        ("n_pick", "-->", "n_use"),
        ("n_card", "-->", "n_more"),  # card[intro] -> more[intro] and outro fold into one edge
    } == edges
    dot_nodes, dot_edges = _dot_graph(diagram.dot(recipe))
    assert dot_edges == {(a, b) for a, _, b in edges} and set(dot_nodes) == set(nodes)


def test_graph_draws_a_collect_all_group_between_its_members_and_its_user(tmp_path: Path) -> None:
    path = tmp_path / "collect.toml"
    path.write_text(
        '[steps.a]\nkind = "text"\nprompt = "one"\noutput = "a.txt"\n\n'
        '[steps.b]\nkind = "text"\nprompt = "two"\noutput = "b.txt"\n\n'
        '[groups.both]\nsteps = ["a", "b"]\nmerge = "collect_all"\n\n'
        '[steps.sum]\nkind = "text"\nprompt = "Sum: ${steps.both}"\noutput = "sum.txt"\n'
    )
    _, edges = _mermaid_graph(diagram.mermaid(load_recipe(path)))
    assert edges == {("n_a", "-.->", "n_both"), ("n_b", "-.->", "n_both"), ("n_both", "-->", "n_sum")}


@pytest.mark.parametrize(
    ("text", "mermaid", "dot"),
    [
        ('say "hi"', "say #34;hi#34;", 'say \\"hi\\"'),  # a quote cannot end a label
        ("a\\b <c>", "a\\b #60;c#62;", "a\\\\b <c>"),  # dot escapes backslashes; mermaid angle brackets
        ("narration[intro]", "narration[intro]", "narration[intro]"),  # brackets are safe inside quotes
    ],
)
def test_labels_are_escaped(text: str, mermaid: str, dot: str) -> None:
    assert diagram._mermaid_text(text) == mermaid
    assert diagram._dot_text(text) == dot


def test_node_ids_are_sanitised_and_unique() -> None:
    nodes = [diagram.Node(n, "step", (n,)) for n in ("a-b", "a_b", "narration[intro]")]
    assert diagram._ids(nodes) == {"a-b": "n_a_b", "a_b": "n_a_b_2", "narration[intro]": "n_narration_intro_"}


def test_graph_of_a_missing_recipe_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = recipe_schema()
    jsonschema.Draft7Validator.check_schema(schema)  # still a valid draft-07 schema
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, recipe: str | dict[str, Any]) -> list[list[Any]]:
    """Where the schema finds fault with ``recipe`` (TOML text or parsed), one path per error."""
    data = tomli.loads(recipe) if isinstance(recipe, str) else recipe
    return [list(e.absolute_path) for e in validator.iter_errors(data)]


#: every template `acpbuild init` can write, and the good fixtures that use several providers
GOOD = [
    *sorted((ROOT / "recipes").glob("*.toml")),
    *(RECIPES / n for n in ("mixed.toml", "chain.toml", "twenty.toml")),
]


@pytest.mark.parametrize("path", GOOD, ids=lambda p: str(p.relative_to(ROOT)))
def test_schema_accepts_every_template_and_good_recipe(path: Path, validator: jsonschema.Draft7Validator) -> None:
    assert _errors(validator, path.read_text()) == []


def test_every_template_is_checked_against_the_schema() -> None:
    assert set(scaffold.NAMES) <= {p.stem for p in GOOD if p.parent == ROOT / "recipes"}


# The fixtures loading rejects and the schema can judge, each with where the schema points.
JUDGED = [
    ("bad_top_level_key.toml", []),  # [varz]: unknown top-level key
    ("bad_recipe_key.toml", ["recipe"]),  # budjet_usd
    ("bad_kind.toml", ["steps", "cover", "kind"]),  # kind enum
    ("bad_provider.toml", ["steps", "cover", "provider"]),  # provider enum
    ("bad_model.toml", ["steps", "cover", "model"]),  # fal's models for the kind
    ("bad_param_name.toml", ["steps", "script", "promt"]),  # promt: no model takes it
    ("bad_param_range.toml", ["steps", "voice", "speed"]),  # local (the default provider) espeak's range
    ("bad_param_type.toml", ["steps", "cover", "seed"]),  # an int, not a string
    ("bad_param_choice.toml", ["steps", "cover", "image_size"]),  # the model's choices
    ("bad_missing_param.toml", ["steps", "script"]),  # local template's required prompt
    ("bad_output_suffix.toml", ["steps", "voice", "output"]),  # speech into a .png
    ("bad_output_absolute.toml", ["steps", "cover", "output"]),  # starts with /
    ("bad_output_escape.toml", ["steps", "cover", "output"]),  # starts with ../
    ("bad_seedance_auto_aspect.toml", ["steps", "clip", "aspect_ratio"]),  # explicit fal: the model's choices
    ("bad_veo3_auto_aspect.toml", ["steps", "clip", "aspect_ratio"]),  # ... narrowed for the kind
]

# The fixtures only loading can judge: what they get wrong is beyond one recipe's tables.
BEYOND_THE_SCHEMA = {
    "bad_cycle.toml",  # references
    "bad_missing_step.toml",
    "bad_media_in_text.toml",
    "bad_unknown_var.toml",  # interpolation
    "bad_env_credential.toml",
    "bad_missing_input.toml",  # the file system
    "bad_same_output.toml",  # two steps together
    "bad_fal_webm.toml",  # a provider's own check of the output container or format
    "bad_veo_webm.toml",
    "bad_speech_format.toml",
    "bad_speech_format_default.toml",
    "bad_toml_syntax.toml",  # not TOML at all
    "bad_output_dir_outside.toml",  # where the project is
    "bad_foreach_absolute_glob.toml",
    "bad_seed_range.toml",  # load-time rules the catalogue's ranges do not carry
    "bad_empty_text.toml",
    "bad_number_nan.toml",  # JSON has no nan
    "bad_defaults_model_table.toml",  # [defaults] tables are free-form in the schema
    "bad_deep_nesting.toml",
}


@pytest.mark.parametrize(("fixture", "where"), JUDGED)
def test_schema_rejects_what_loading_rejects(
    fixture: str, where: list[str], validator: jsonschema.Draft7Validator
) -> None:
    with pytest.raises(RecipeError):
        load_recipe(RECIPES / fixture)
    assert _errors(validator, (RECIPES / fixture).read_text())[:1] == [where]


def test_every_bad_fixture_is_judged_by_the_schema_or_named_as_beyond_it() -> None:
    fixtures = {p.name for p in RECIPES.glob("bad_*.toml")}
    assert fixtures == {f for f, _ in JUDGED} | BEYOND_THE_SCHEMA


FLUX = {"kind": "text_to_image", "provider": "fal", "model": "flux-dev", "output": "a.png"}
TEXT = {"kind": "text", "prompt": "x", "output": "a.txt"}  # local, by default
FAL_IS_DEFAULT = {"kind": "text_to_image", "model": "flux-dev", "prompt": "x", "output": "a.png"}


def _one(step: dict[str, Any]) -> dict[str, Any]:
    """A recipe of one step, named a."""
    return {"steps": {"a": step}}


@pytest.mark.parametrize(
    ("recipe", "where"),
    [
        # a model that exists but does not serve the kind, where the provider serves it with others
        (_one({**FLUX, "model": "kling", "prompt": "x"}), ["steps", "a", "model"]),
        (_one({**TEXT, "provider": "google", "model": "gemini-2.5-flash-image"}), ["steps", "a", "model"]),
        # ... or where the provider serves no model of the kind at all
        (_one({**TEXT, "provider": "fal", "model": "flux-dev"}), ["steps", "a", "kind"]),
        (_one({"kind": "avatar", "image": "a.png", "audio": "a.mp3", "output": "a.mp4"}), ["steps", "a"]),
        # a parameter the explicitly named model does not take (another model's)
        (_one({**FLUX, "prompt": "x", "voice": "Rachel"}), ["steps", "a", "voice"]),
        # ... nor does the local model a step without provider gets
        (_one({**TEXT, "image_size": "square"}), ["steps", "a", "image_size"]),
        # ... nor the model of the provider [defaults] names, and that provider's models are the choice
        (
            {"defaults": {"text_to_image": {"provider": "fal"}}, "steps": {"a": {**FAL_IS_DEFAULT, "voice": "x"}}},
            ["steps", "a", "voice"],
        ),
        (
            {"defaults": {"text_to_image": {"provider": "fal"}}, "steps": {"a": {**FAL_IS_DEFAULT, "model": "pillow"}}},
            ["steps", "a", "model"],
        ),
        # a key no model takes, with provider and model explicit, and with them from [defaults]
        (_one({**FLUX, "prompt": "x", "promtp": "y"}), ["steps", "a", "promtp"]),
        (
            {
                "defaults": {"text_to_image": {"provider": "fal", "model": "flux-dev"}},
                "steps": {"a": {"kind": "text_to_image", "prompt": "x", "promtp": "y", "output": "a.png"}},
            },
            ["steps", "a", "promtp"],
        ),
        # a missing required parameter: of the model named, of the provider's one model for the
        # kind, and of the defaults' provider's one model
        (_one({**FLUX, "seed": 3}), ["steps", "a"]),
        (_one({**FLUX, "kind": "image_to_image", "model": "flux-kontext", "prompt": "x"}), ["steps", "a"]),
        (_one({"kind": "image_to_image", "provider": "fal", "prompt": "x", "output": "a.png"}), ["steps", "a"]),
        (
            {
                "defaults": {"image_to_image": {"provider": "fal"}},
                "steps": {"a": {"kind": "image_to_image", "prompt": "x", "output": "a.png"}},
            },
            ["steps", "a"],
        ),
        # names validate refuses
        ({"steps": {"a b": TEXT}}, ["steps"]),
        ({"steps": {"-a": TEXT}}, ["steps"]),
        ({"steps": {"a[1]": TEXT}}, ["steps"]),
        ({"steps": {"a": TEXT}, "groups": {"g:1": {"steps": ["a"], "merge": "collect_all"}}}, ["groups"]),
        # a group's output outside output_dir
        (
            {
                "steps": {"a": TEXT, "b": {**TEXT, "output": "b.txt"}},
                "groups": {"g": {"steps": ["a", "b"], "merge": "first_success", "output": "../g.txt"}},
            },
            ["groups", "g", "output"],
        ),
        # an output suffix that does not fit the kind, also with an explicit provider or a foreach item
        (_one({**TEXT, "output": "a.mp4"}), ["steps", "a", "output"]),
        (_one({**FLUX, "prompt": "x", "output": "a.mp3"}), ["steps", "a", "output"]),
        (
            _one({**TEXT, "foreach": [{"id": "b"}], "output": "o/${item.id}.wav"}),
            ["steps", "a", "output"],
        ),
    ],
)
def test_schema_rejects(recipe: dict[str, Any], where: list[str], validator: jsonschema.Draft7Validator) -> None:
    assert where in _errors(validator, recipe)


@pytest.mark.parametrize(
    "recipe",
    [
        # a required parameter from [defaults], for the local default provider and an explicit one
        {"defaults": {"text": {"prompt": "x"}}, "steps": {"a": {"kind": "text", "output": "a.txt"}}},
        {"defaults": {"text_to_image": {"prompt": "x"}}, "steps": {"a": FLUX}},
        # a step without provider is the defaults' provider's, so local's parameter list must not apply
        {
            "defaults": {"text_to_image": {"provider": "fal", "model": "flux-dev"}},
            "steps": {"a": {"kind": "text_to_image", "prompt": "x", "image_size": "square", "output": "a.png"}},
        },
        # ... and its model may come from [defaults] though the step names a provider with several
        {
            "defaults": {"text_to_image": {"model": "flux-dev"}},
            "steps": {"a": {"kind": "text_to_image", "provider": "fal", "prompt": "x", "output": "a.png"}},
        },
        # an output suffix in any case, or one only loading knows (from a foreach item)
        _one({**TEXT, "output": "A.TXT"}),
        _one({**TEXT, "foreach": [{"id": "b", "file": "b.md"}], "output": "o/${item.file}"}),
        # names with the characters validate allows
        {"steps": {"a.b-c_1": TEXT}, "groups": {"g-1.x": {"steps": ["a.b-c_1"], "merge": "collect_all"}}},
    ],
)
def test_schema_accepts_what_loading_accepts(
    recipe: dict[str, Any], tmp_path: Path, validator: jsonschema.Draft7Validator
) -> None:
    path = tmp_path / "r.toml"
    path.write_text(tomlkit.dumps(recipe))
    load_recipe(path)  # the case is a valid recipe
    assert _errors(validator, recipe) == []


def test_schema_accepts_a_recipe_with_a_foreach_family_and_groups(validator: jsonschema.Draft7Validator) -> None:
    assert _errors(validator, FAMILY_AND_GROUP) == []


#: an input file per file parameter type, for steps that need one
INPUTS = {"image": "in.png", "audio": "in.mp3", "video": "in.mp4", "file": "in.txt"}


def _a_value(spec: Param) -> Any:
    if spec.type in INPUTS:
        return INPUTS[spec.type]
    if spec.type == "files":
        return [INPUTS["video"], INPUTS["video"]]
    if spec.choices:
        return spec.choices[0]
    return {"str": "a red kite over the dunes", "int": 1, "float": 1.0, "bool": True, "list": []}[spec.type]


def test_schema_asks_every_model_for_its_required_parameters(
    tmp_path: Path, validator: jsonschema.Draft7Validator
) -> None:
    # one step per (provider, model, kind) with only its required parameters: a valid recipe
    steps: dict[str, dict[str, Any]] = {}
    for provider in providers.BUILT_IN:
        catalogue = providers.catalogue(provider)
        for model in catalogue.values():
            for kind in model.kinds:
                step: dict[str, Any] = {"kind": kind, "provider": provider}
                if sum(kind in m.kinds for m in catalogue.values()) > 1:
                    step["model"] = model.name  # else it may be left out, and is
                step["output"] = f"out{len(steps)}{SUFFIXES[KINDS[kind]][0]}"
                step.update((n, _a_value(p)) for n, p in model.params_for(kind).items() if p.required)
                steps[f"{provider}_{len(steps)}"] = step
    for name in INPUTS.values():
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "all.toml"
    path.write_text(tomlkit.dumps({"steps": steps}))
    load_recipe(path)
    assert _errors(validator, {"steps": steps}) == []
    missing = 0
    for name, step in steps.items():
        model = providers.catalogue(step["provider"])[step.get("model") or _only_model(step)]
        for param in (n for n, p in model.params_for(step["kind"]).items() if p.required):
            without = {k: v for k, v in step.items() if k != param}
            assert _errors(validator, {"steps": {name: without}}) == [["steps", name]], (name, param)
            missing += 1
    assert missing > len(steps)  # most models require something, several two things


def _only_model(step: dict[str, Any]) -> str:
    (model,) = (m.name for m in providers.catalogue(step["provider"]).values() if step["kind"] in m.kinds)
    return model


@pytest.mark.parametrize(
    "step",
    [
        {"kind": "text", "promt": "x", "output": "a.txt"},  # local, by default
        {**FLUX, "promt": "x"},  # provider and model named
    ],
)
def test_a_misspelt_key_is_one_error_at_that_key(step: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    # Taplo repeats an error about a table on every line of it: one error at the key is one diagnostic,
    # and the required parameter the misspelling leaves out is not asked for as well
    assert _errors(validator, {"steps": {"a": step}}) == [["steps", "a", "promt"]]


def test_a_schema_directive_comment_does_not_disturb_loading(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("#:schema ./acpbuild.schema.json\n" + (RECIPES / "chain.toml").read_text())
    recipe = load_recipe(path)
    assert recipe.steps["voice"].line == 15  # line numbers still count the directive


def test_schema_command_writes_a_file_or_says_what_to_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "acpbuild.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text())["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "#:schema" in capsys.readouterr().out
    assert main(["schema", "-o", str(tmp_path / "missing" / "s.json")]) == 1
    assert "does not exist; create it" in capsys.readouterr().err


def test_schema_command_suggests_a_directive_relative_to_a_recipe_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Taplo reads a #:schema path relative to the recipe, and acpbuild.toml would sit here, not in sub/
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert main(["schema", "-o", "sub/x.json"]) == 0
    assert "'#:schema ./sub/x.json'" in capsys.readouterr().out
    assert main(["schema", "-o", str(tmp_path / "sub" / "x.json")]) == 0  # absolute, below here
    assert "'#:schema ./sub/x.json'" in capsys.readouterr().out


def test_readme_vs_code_association_is_json_and_matches_init_and_recipes() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r'```json\n(\s*"evenBetterToml\.schema\.associations".*?)```', readme, re.DOTALL)
    assert block, "the README shows the Even Better TOML setting"
    (pattern, target), = json.loads("{" + block[1] + "}")["evenBetterToml.schema.associations"].items()
    assert target == "./acpbuild.schema.json"
    for uri in ("file:///home/me/film/acpbuild.toml", "file:///home/me/film/recipes/teaser.toml"):
        assert re.search(pattern, uri), uri
    for uri in ("file:///home/me/film/pyproject.toml", "file:///home/me/film/my_acpbuild.toml"):
        assert not re.search(pattern, uri), uri


def test_info_shows_store_ledger_keys_and_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("ACPBUILD_STORE", "FAL_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ACPBUILD_FAL_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FAL_KEY", "fal-secret-value-1234")
    monkeypatch.setenv("ACPBUILD_FAL_URL", "http://127.0.0.1:9/fal")
    monkeypatch.setenv("ACPBUILD_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "acpbuild.toml").write_text('[recipe]\nstore = "cache"\n' + (RECIPES / "chain.toml").read_text().split("\n", 4)[4])
    blob = tmp_path / "cache" / "objects" / "ab"
    blob.mkdir(parents=True)
    (blob / "cdef").write_bytes(b"x" * 100)
    layout.open_ledger(tmp_path / "cache").close()

    assert main(["info", "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert doc["store"] == str(tmp_path / "cache") and doc["store_from"] == "recipe"
    assert (doc["blobs"], doc["objects_bytes"]) == (1, 100)
    assert doc["ledger_exists"] and doc["generations"] == 0 and doc["ledger_bytes"] > 0
    fal = next(p for p in doc["providers"] if p["name"] == "fal")
    assert fal["key_set_in"] == "FAL_KEY" and fal["url"] == "http://127.0.0.1:9/fal" and "flux-dev" in fal["models"] and "hailuo-02" in fal["models"]
    google = next(p for p in doc["providers"] if p["name"] == "google")
    assert google["key_set_in"] is None
    assert doc["prices"] > 10 and doc["prices_oldest"] <= doc["prices_newest"]
    assert doc["config"] == str(tmp_path / "config.toml") and not doc["config_exists"]
    assert "fal-secret-value-1234" not in out

    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "FAL_KEY is set" in text and "1 blob, 100 B" in text and "fal-secret-value-1234" not in text


def test_info_without_a_recipe_uses_acpbuild_store_or_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACPBUILD_STORE", raising=False)
    assert main(["info", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(tmp_path / ".acpbuild") and doc["store_from"] == "default"
    assert not doc["ledger_exists"] and not (tmp_path / ".acpbuild").exists()  # info creates nothing
    monkeypatch.setenv("ACPBUILD_STORE", str(tmp_path / "elsewhere"))
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["store_from"] == "ACPBUILD_STORE"
    assert main(["info"]) == 0  # for people: each provider's models by name, unbroken
    text = capsys.readouterr().out
    assert "veo-3.1-fast-generate-001" in text and "eleven_multilingual_v2" in text


def test_info_with_a_missing_recipe_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err
