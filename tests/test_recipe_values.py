"""Values a provider would refuse (or choke on) are refused when the recipe loads, naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from acpbuild.errors import RecipeError
from acpbuild.recipe import load_recipe


def recipe(tmp_path: Path, body: str, head: str = "") -> Path:
    path = tmp_path / "r.toml"
    path.write_text(head + "[steps.a]\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        # a local seed: the catalogue gives no range, so a seed's own (32 bits unsigned)
        ('kind = "text_to_image"\nprompt = "x"\nseed = 100000000000000000000000\noutput = "a.png"\n', "seed", "seed range"),
        ('kind = "text"\nprompt = "x"\nseed = -1\noutput = "a.txt"\n', "seed", "seed range"),
        ('kind = "text"\nprompt = "x"\nseed = 4294967296\noutput = "a.txt"\n', "seed", "seed range"),
        # a paid model's own, narrower range wins
        (
            'kind = "text_to_image"\nprovider = "fal"\nmodel = "flux-dev"\nprompt = "x"\nseed = 4294967295\noutput = "a.png"\n',
            "seed",
            "above the maximum",
        ),
        # numbers that are no numbers
        ('kind = "text_to_video"\nprompt = "x"\nduration_s = inf\noutput = "a.mp4"\n', "duration_s", "above the maximum"),
        ('kind = "text_to_video"\nprompt = "x"\nduration_s = nan\noutput = "a.mp4"\n', "duration_s", "not a finite"),
        # empty and blank texts
        ('kind = "text"\nprompt = ""\noutput = "a.txt"\n', "prompt", "is empty"),
        ('kind = "text_to_image"\nprompt = "  \\n"\noutput = "a.png"\n', "prompt", "only blanks"),
        ('kind = "text_to_speech"\ntext = ""\noutput = "a.mp3"\n', "text", "is empty"),
    ],
)
def test_a_value_out_of_range_is_refused_at_load(tmp_path: Path, body: str, key: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message) as caught:
        load_recipe(recipe(tmp_path, body), env={})
    assert caught.value.table == f"steps.a.{key}" and caught.value.line is not None


def test_a_huge_seed_through_a_variable_is_refused_at_the_step(tmp_path: Path) -> None:
    path = recipe(
        tmp_path,
        'kind = "text_to_image"\nprompt = "x"\nseed = "${s}"\noutput = "a.png"\n',
        head="[vars]\ns = 100000000000000000000000\n\n",
    )
    with pytest.raises(RecipeError, match="seed range") as caught:
        load_recipe(path, env={})
    assert caught.value.table == "steps.a.seed" and caught.value.line == 7


def test_an_empty_text_from_a_variable_is_refused_and_a_step_output_is_not_judged(tmp_path: Path) -> None:
    path = recipe(tmp_path, 'kind = "text_to_speech"\ntext = "${t}"\noutput = "a.mp3"\n', head='[vars]\nt = ""\n\n')
    with pytest.raises(RecipeError, match="is empty"):
        load_recipe(path, env={})
    # another step's text is only known when it runs
    path.write_text(
        '[steps.s]\nkind = "text"\nprompt = "x"\noutput = "s.txt"\n'
        '[steps.a]\nkind = "text_to_speech"\ntext = "${steps.s}"\noutput = "a.mp3"\n',
        encoding="utf-8",
    )
    load_recipe(path, env={})


@pytest.mark.parametrize(
    ("head", "key"),
    [
        ("[recipe]\nbudget_usd = inf\n", "recipe.budget_usd"),
        ("", "steps.a.timeout_s"),
    ],
)
def test_recipe_numbers_are_finite_and_bounded(tmp_path: Path, head: str, key: str) -> None:
    body = 'kind = "text"\nprompt = "x"\noutput = "a.txt"\n' + ("timeout_s = 1e300\n" if not head else "")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe(tmp_path, body, head), env={})
    assert caught.value.table == key
