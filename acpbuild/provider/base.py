"""The one interface every provider implements, and the catalogue types (public: :mod:`acpbuild.provider`).

A provider is a catalogue of models plus one method, :meth:`Provider.generate`,
which turns a :class:`Job` into exactly one output file. Everything else (keys,
the store, the ledger, budgets, retries of whole steps) lives outside providers,
so a new service is one module. SDKs are imported inside ``generate`` only, so
loading a recipe or printing ``--help`` never pays for an SDK import.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from acpbuild.errors import did_you_mean

#: the version of this API; see :func:`compatible`
API_VERSION = "1.1"


def compatible(wanted: str, have: str = API_VERSION) -> bool:
    """Whether an adapter written for API ``wanted`` ("MAJOR.MINOR") runs on API ``have``.

    The major versions must be equal (a major bump removes or changes something),
    and the adapter's minor must not be newer (a minor bump only adds).
    """
    try:
        w_major, w_minor = (int(part) for part in wanted.split("."))
        h_major, h_minor = (int(part) for part in have.split("."))
    except ValueError:
        return False
    return w_major == h_major and w_minor <= h_minor


ParamType = Literal["str", "int", "float", "bool", "list", "image", "audio", "video", "file", "files"]

# Parameter types whose value is a file (a path in the recipe or another step's output).
FILE_TYPES = frozenset({"image", "audio", "video", "file"})


@dataclass(frozen=True)
class Param:
    """One parameter a model accepts."""

    type: ParamType
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    kinds: tuple[str, ...] | None = None  # None: every kind the model serves
    help: str = ""
    #: kind -> the narrower choices the model accepts for that kind only
    kind_choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, hash=False)

    def for_kind(self, kind: str) -> Param:
        """This parameter as a step of ``kind`` sees it (its choices narrowed, if they are)."""
        narrowed = self.kind_choices.get(kind)
        if narrowed is None:
            return self
        return dataclasses.replace(self, choices=narrowed, kind_choices={})

    def describe(self) -> str:
        """What the parameter takes, for a person: its meaning, type, choices and range."""
        bits: list[str] = [self.type]
        if self.choices:
            bits.append("one of " + ", ".join(map(str, self.choices)))
        if self.min is not None or self.max is not None:
            low = "" if self.min is None else f"{self.min:g}"
            high = "" if self.max is None else f"{self.max:g}"
            bits.append(f"{low}..{high}")
        return f"{self.help} ({'; '.join(bits)})" if self.help else f"({'; '.join(bits)})"

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None when it is."""
        if self.type in FILE_TYPES:
            return None if isinstance(value, (str, Path)) else "expected a file path"
        if self.type == "files":
            ok_list = isinstance(value, list) and all(isinstance(v, (str, Path)) for v in value)
            return None if ok_list else "expected a list of file paths"
        if self.type == "bool":
            ok = isinstance(value, bool)
        elif self.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.type == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.type == "list":
            ok = isinstance(value, list)
        else:
            ok = isinstance(value, str)
        if not ok:
            return f"expected {self.type}, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            tip = did_you_mean(str(value), [str(c) for c in self.choices])
            hint = f"; {tip}" if tip else ""
            return f"{value!r} is not one of {', '.join(map(repr, self.choices))}{hint}"
        if self.min is not None and value < self.min:
            return f"{value!r} is below the minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{value!r} is above the maximum {self.max:g}"
        return None


@dataclass(frozen=True)
class Model:
    """A catalogue entry: a model key as recipes write it."""

    name: str
    endpoints: Mapping[str, str]  # kind -> the provider's own endpoint or model id
    params: Mapping[str, Param]
    description: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.endpoints)

    def params_for(self, kind: str) -> dict[str, Param]:
        """The parameters a step of ``kind`` takes, with that kind's own choices."""
        return {n: p.for_kind(kind) for n, p in self.params.items() if p.kinds is None or kind in p.kinds}


@dataclass
class Job:
    """One generation to perform.

    ``params`` holds the step's parameters after interpolation, with the model's
    defaults filled in; file parameters are absolute paths. The provider writes
    its single output to ``output`` (a staging path whose suffix is the one the
    recipe asked for) and nothing else.
    """

    kind: str
    model: Model
    params: dict[str, Any]
    output: Path
    timeout_s: float = 600.0


class Journal(Protocol):
    """How a provider records a long job before it waits for it.

    ``resume_id`` is the request id of an earlier submission of this same
    generation that never finished (the run was killed while polling); a
    provider that can resume polls that job instead of submitting again.
    ``submitted`` commits a new request id to the ledger *before* polling.
    """

    @property
    def resume_id(self) -> str | None: ...

    def submitted(self, request_id: str) -> None: ...


class Problem(NamedTuple):
    """Something a step asks for that its provider would refuse, found before any request.

    ``key`` is the recipe key to blame: a parameter's name, or ``"output"``.
    """

    key: str
    message: str


@dataclass
class Outcome:
    """What a generation reports besides its output file.

    ``actual_cost`` is the provider's own figure in USD, where it gives one;
    otherwise the cost is computed from ``usage`` (images, megapixels, seconds,
    characters, input_tokens, output_tokens, requests). ``meta`` holds small
    JSON-able facts for the ledger, never a secret.
    """

    request_id: str | None = None
    actual_cost: float | None = None
    usage: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class Provider(abc.ABC):
    """A generation service: a catalogue and one method."""

    #: name as recipes write it
    name: str = ""
    #: the adapter's own version; it enters every step key, so bump it when
    #: the same parameters would now produce a different result. Write it in
    #: the adapter's class body: the no-op fast path reads it again only when
    #: the file that declares it has changed
    version: str = "1"
    #: whether calls cost money (the local provider is free)
    paid: bool = True
    #: environment variables that can hold the API key, in order of preference
    key_vars: tuple[str, ...] = ()
    #: environment variable that overrides the endpoint
    url_var: str = ""
    #: other settings it reads from the environment (not secrets), with what each does
    setting_vars: tuple[tuple[str, str], ...] = ()
    #: how many of its generations run at once unless the recipe says otherwise
    #: (``[recipe] concurrency = { fal = 2 }``); kept below the default ``-j`` so
    #: one slow or rate-limited provider cannot hold every worker
    concurrency: int = 4
    #: the kinds whose work runs in this process, in Python, start to end: nothing to
    #: wait on (no network, no child process), so running several at once gains
    #: nothing; a run of only these builds its steps one after another
    in_process: frozenset[str] = frozenset()
    #: the version of :mod:`acpbuild.provider` the adapter was written for ("1.0");
    #: a plugin must say it, and loads only where :func:`compatible` allows
    api_version: str = ""
    #: a TOML file in the adapter's own package with its prices, in the format of
    #: :mod:`acpbuild.provider.prices` (the built-in providers' are acpbuild's own)
    prices: str = ""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        import os

        self.env: Mapping[str, str] = os.environ if env is None else env

    @classmethod
    def price_table(cls) -> dict[str, dict[str, Any]]:
        """The adapter's prices by model key, read from :attr:`prices` ({} when it names none).

        Override it to build the table another way.
        """
        if not cls.prices:
            return {}
        import sys
        from importlib import resources

        import tomli

        module = sys.modules[cls.__module__]
        if module.__spec__ is not None and module.__spec__.parent:
            text = (resources.files(module.__spec__.parent) / cls.prices).read_text(encoding="utf-8")
        else:  # a top-level module: the file beside it
            text = (Path(module.__file__ or ".").parent / cls.prices).read_text(encoding="utf-8")
        models: dict[str, dict[str, Any]] = tomli.loads(text).get("models", {})
        return models

    @abc.abstractmethod
    def catalogue(self) -> Mapping[str, Model]:
        """The models this provider serves, by the key recipes use."""

    @abc.abstractmethod
    def generate(self, job: Job, journal: Journal) -> Outcome:
        """Perform ``job``, writing exactly one file at ``job.output``."""

    @classmethod
    def check(cls, kind: str, model: Model, params: Mapping[str, Any], suffix: str) -> list[Problem]:
        """What this provider would refuse in a step, from the step alone (no SDK, no request).

        The recipe loader calls it, so a step the provider cannot serve fails when
        the recipe loads, before any step is paid for; ``generate`` asks again
        (:meth:`refuse_unfit`). ``params`` are the step's parameters as the
        recipe sets them: one left out takes its default, and a value made by
        another step (not a plain value yet) is for the provider to check at run
        time. ``suffix`` is the output file's, e.g. ``".mp4"``. Checks that the
        catalogue expresses (types, ranges, per-kind choices) are not repeated here.
        """
        return []

    @classmethod
    def problems(cls, kind: str, model: Model, params: Mapping[str, Any], suffix: str) -> list[Problem]:
        """Everything the catalogue and :meth:`check` refuse in a step's ``params``, before any request.

        Unknown parameters, values of the wrong type or out of their range or
        choices, and missing required ones come first; when there are none,
        :meth:`check` judges the combination. A recipe that loads has none.
        """
        accepted = model.params_for(kind)
        found: list[Problem] = []
        for key, value in params.items():
            spec = accepted.get(key)
            if spec is None:
                found.append(Problem(key, f"{model.name} ({kind}) takes no parameter {key!r}"))
            elif (why := spec.check(value)) is not None:
                found.append(Problem(key, why))
        found += [Problem(k, "is required") for k, spec in accepted.items() if spec.required and k not in params]
        return found or cls.check(kind, model, params, suffix)

    def lacks(self, kind: str, model: Model, params: Mapping[str, Any]) -> list[Problem]:
        """What the account behind the key lacks for one step a run would call this provider for.

        A run asks before it spends anything (before it asks to), for every step it
        would call this provider for, a ``first_success`` group's fallbacks included;
        ``plan`` and ``estimate`` ask too. It is asked only when the key is set.
        ``params`` are the step's parameters with defaults filled in, as far as they
        are known before the run: a value another step will make is left out. It may
        make cheap requests that cost nothing (ElevenLabs lists the account's voices);
        keep what they return on the adapter, which serves one whole run, so that
        each is made once per run, not once per step. A :class:`ProviderError` it
        raises (a refused key, say) is reported like a problem. Default: nothing.
        """
        return []

    def refuse_unfit(self, job: Job) -> None:
        """Raise :class:`~acpbuild.errors.RequestRejected` (nothing sent) for the first problem of :meth:`check`."""
        from acpbuild.errors import RequestRejected

        for problem in self.check(job.kind, job.model, job.params, job.output.suffix):
            raise RequestRejected(
                f"cannot write {job.output.name!r}: {problem.message}"
                if problem.key == "output"
                else f"{problem.key}: {problem.message}",
                provider=self.name,
                sent=False,
            )

    def close(self) -> None:
        """Release what the adapter keeps between generations (SDK clients, connection pools).

        The runner calls it once, when the run that made the adapter ends; the
        adapter must not be used after it.
        """

    def pings(self) -> dict[str, Callable[[], str]]:
        """What ``doctor --ping`` checks: a label ("ping", "vertex ping") -> a call like :meth:`ping`."""
        return {"ping": self.ping}

    def ping(self) -> str:
        """Make one cheap authenticated request; say what it showed (never the key).

        Raises :class:`~acpbuild.errors.ProviderError` when the provider refuses.
        """
        return "nothing to check: this provider makes no network calls"

    def api_key(self) -> str | None:
        """The configured key, or None. Never log or return it in a message."""
        for var in self.key_vars:
            value = self.env.get(var)
            if value:
                return value
        return None

    def base_url(self) -> str | None:
        return self.env.get(self.url_var) if self.url_var else None
