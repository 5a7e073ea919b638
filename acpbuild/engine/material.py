"""A step's parameters as its provider receives them, and the key material they make.

:func:`prepare` renders a step's parameters once per run (upstream outputs
resolved, the model's defaults filled in) and keys them: every input file and
upstream output enters the material as its digest, text outputs as the text the
provider sees. The plan prepares each step whose inputs it knows; the build
reuses that, unless an upstream output turned out other than planned (a corrupt
blob made again), in which case the step is prepared afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acpbuild.errors import AcpbuildError
from acpbuild.keys import KEY_SCHEMA, DigestCache, canonical, key_of_text
from acpbuild.provider import Provider
from acpbuild.recipe import Recipe, Step
from acpbuild.recipe.interpolate import Ref, render
from acpbuild.store.ledger import OutputRecord

#: where an upstream step's output can be read now, and its digest
Upstream = Callable[[str], tuple[Path, str]]


class UnknownInput(Exception):
    """An upstream output is not available yet, so the key cannot be computed."""


@dataclass(frozen=True)
class Prepared:
    """A step ready to key and call: its parameters, key material and key."""

    #: parameters for the provider: upstream media as their output paths, text as text
    params: dict[str, Any]
    material: dict[str, Any]
    key: str
    #: the digest of each upstream output the parameters were rendered from
    inputs: dict[str, str]
    #: where each upstream output could be read when prepared (a store blob, before it is restored)
    readable: dict[Path, Path]
    #: ``material`` as :func:`~acpbuild.keys.canonical` text, as the ledger keeps it
    said: str


def with_defaults(specs: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` over the model's defaults: a default written out is the same request."""
    merged = {n: p.default for n, p in specs.items() if p.default is not None}
    merged.update(params)
    return merged


def prepare(step: Step, upstream: Upstream, *, recipe: Recipe, digests: DigestCache, provider: Provider) -> Prepared:
    """``step`` rendered and keyed, given where each upstream output is and its digest.

    :meth:`Context.prepare <acpbuild.engine.context.Context.prepare>` calls this
    once per step and run, and keeps the answer.
    """
    inputs: dict[str, str] = {}
    upstream_digests: dict[Path, str] = {}
    readable: dict[Path, Path] = {}

    def value(ref: Ref) -> Any:
        path, digest = upstream(ref.step)
        inputs[ref.step] = digest
        media, output = recipe.output_of(ref.step)
        if media == "text":
            return path.read_text(encoding="utf-8")  # what the provider sees
        upstream_digests[output] = digest
        if path != output:
            readable[output] = path
        return output

    def file_value(value: Any) -> Any:
        if isinstance(value, list):
            return [file_value(v) for v in value]
        if not isinstance(value, Path):
            return value
        digest = upstream_digests.get(value) or digests.digest(value)
        if digest is None:
            raise AcpbuildError(f"step {step.name!r}: input file {value} has disappeared")
        return {"digest": digest}

    model = provider.catalogue().get(step.model)
    specs = model.params_for(step.kind) if model is not None else {}
    params = with_defaults(specs, render(step.params, value))
    material = {
        "schema": KEY_SCHEMA,
        "kind": step.kind,
        "provider": step.provider,
        "model": step.model,
        "adapter": provider.version,
        # the format decides the bytes (.mp3 or .wav); the file's name does not
        "format": step.output_path.suffix.lower(),
        "params": {name: file_value(v) for name, v in params.items()},
    }
    if step.draft_of:
        # a draft is never mistaken for the paid generation it stands in for
        material["draft_of"] = step.draft_of
    said = canonical(material)
    return Prepared(params, material, key_of_text(said), inputs, readable, said)


def why(record: OutputRecord | None, material: dict[str, Any]) -> str:
    """A short reason a step must run, from the last material built at its output (``record``)."""
    if record is None or not record.material:
        return "never built"
    before = json.loads(record.material)
    changed = [k for k in ("kind", "provider", "model", "adapter", "format") if before.get(k) != material.get(k)]
    old, new = before.get("params", {}), material["params"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changed.append(f"{name} {'added' if name not in old else 'removed' if name not in new else 'changed'}")
    return ", ".join(changed) if changed else "output missing or modified"
