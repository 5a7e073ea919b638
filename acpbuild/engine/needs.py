"""What a run needs before it pays: each paid step's API key, and what the account behind it must hold.

A run checks it once the plan is made and before it asks to spend anything;
``plan`` and ``estimate`` check it too. Every step the plan would call a paid
provider for is checked, a ``first_success`` group's fallbacks included: they
run exactly when an earlier member fails, which is no time to find their key
missing. Steps up to date or restorable from the store call no provider and
need nothing. Everything missing is gathered into one answer, so a user sets
every key and fixes every voice in one go instead of one per run.

The key check is the same for every provider (:attr:`Provider.key_vars`); what
an account must hold is the provider's to say (:meth:`Provider.lacks`: ElevenLabs
names the voices it does not have), and it is asked only when the key is set.
Messages name the steps and the variables, never a key's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from acpbuild.config.secrets import redact
from acpbuild.engine.context import Context
from acpbuild.engine.material import with_defaults
from acpbuild.errors import AcpbuildError, NotReady
from acpbuild.recipe import Recipe, Step
from acpbuild.recipe.interpolate import refs_in

#: "key": an API key variable is not set; "account": the account lacks something (a voice)
Kind = Literal["key", "account"]


@dataclass(frozen=True)
class Unmet:
    """One thing a run needs and does not have, and the steps that need it."""

    what: str
    kind: Kind
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "kind": self.kind, "steps": list(self.steps)}


def unmet(ctx: Context, calls: list[str]) -> list[Unmet]:
    """What the steps named in ``calls`` (those a run would call their provider for) lack here."""
    recipe = ctx.recipe
    fallbacks = _fallbacks(recipe)
    found: dict[tuple[Kind, str], list[str]] = {}
    for name in calls:
        step = recipe.steps[name]
        provider = ctx.provider(step.provider)
        if not provider.paid:
            continue
        label = f"{name} (a fallback of group {fallbacks[name]})" if name in fallbacks else name
        if provider.key_vars and provider.api_key() is None:
            found.setdefault(("key", f"{' or '.join(provider.key_vars)} is not set ({step.provider})"), []).append(label)
            continue
        for problem in _lacks(ctx, step):
            found.setdefault(("account", redact(problem, ctx.env)), []).append(label)
    return [Unmet(what, kind, tuple(steps)) for (kind, what), steps in found.items()]


def check(ctx: Context, calls: list[str]) -> None:
    """Raise :class:`~acpbuild.errors.NotReady` naming everything :func:`unmet` finds, if anything."""
    missing = unmet(ctx, calls)
    if missing:
        raise NotReady(message(ctx.recipe.name, missing), missing=[(m.what, m.steps) for m in missing])


def message(recipe: str, missing: list[Unmet]) -> str:
    """Every missing thing on a line of its own, with the steps that need it, and what to do."""
    lines = [f"a run of {recipe} needs what is missing here, and stops before paying for anything:"]
    for m in missing:
        lines += [f"  {m.what}", f"    needed by {', '.join(m.steps)}"]
    tips = []
    if any(m.kind == "key" for m in missing):
        tips.append("set each key in the environment or in a .env file beside the recipe (acpbuild init writes a .env.example naming them)")
    if any(m.kind == "account" for m in missing):
        tips.append("change the recipe to what the account has, or add it to the account")
    return "\n".join(lines) + "\n  TIP: " + "; ".join(tips)


def _fallbacks(recipe: Recipe) -> dict[str, str]:
    """Each first_success member after the first -> its group: it runs only if those before it fail."""
    return {m: g.name for g in recipe.groups.values() if g.merge == "first_success" for m in g.members[1:]}


def _lacks(ctx: Context, step: Step) -> list[str]:
    provider = ctx.provider(step.provider)
    model = provider.catalogue()[step.model]
    params = with_defaults(model.params_for(step.kind), {k: v for k, v in step.params.items() if not refs_in(v)})
    try:
        return [f"{step.provider}: {p.message}" for p in provider.lacks(step.kind, model, params)]
    except AcpbuildError as exc:  # the check itself failed: a refused key, a service that does not answer
        return [str(exc)]
