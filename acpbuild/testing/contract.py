"""The provider contract: what every adapter, built in or from a plugin, must do, as pytest tests.

Subclass :class:`ProviderContract` in a test module, say which class to test,
how to start an emulator of its service, and what to ask it::

    from acpbuild.testing import ProviderContract, Sample

    class TestRunwayContract(ProviderContract):
        provider = RunwayProvider
        key = "test-runway-key"                  # a fake key the emulator accepts

        def emulator(self):                      # a fresh LoopbackServer, not started
            return RunwayEmulator(key=self.key)

        def env(self, server, key):              # point the adapter at it
            return {"RUNWAYML_API_SECRET": key, "RUNWAYML_BASE_URL": server.url}

        def samples(self, inputs):               # one job per model; write input files under inputs
            return [Sample("image_to_video", "gen4-turbo", {"image": str(png)}, ".mp4", long=True)]

The emulator gives each route a role (:meth:`LoopbackServer.route`): the suite
scripts failures on the ``"submit"`` route (a request that may be billed) and on
the route that carries the output (``"download"``, else ``"result"``, else
``"submit"``), and reads the ``"poll"`` requests. Each test then checks, for
every sample:

- the adapter declares a name and an API version this acpbuild runs;
- its catalogue is well formed, every kind is one acpbuild knows, and its price
  table agrees with it (every model priced, every price a catalogued model);
- :meth:`Provider.problems` refuses values out of each parameter's range,
  choices or type, and accepts each sample;
- ``generate`` writes exactly one file, the output, which decodes as its kind's
  media, and reports usage the price table can turn into a cost;
- a cut answer (the output's bytes, or the answer that carries them) fails with
  a :class:`~acpbuild.provider.ProviderError` and leaves no file behind;
- a long job's request id reaches the journal before the first poll, and a
  journalled job is resumed by polling, never by submitting again;
- no error, its message, its repr or its traceback holds the key, even when
  the service echoes it back;
- a possibly billed request (answered 500, or never answered) is sent once.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from acpbuild.provider import Job, Model, Outcome, Param, Provider, ProviderError, compatible
from acpbuild.provider.outputs import check_output
from acpbuild.provider.prices import table_problems
from acpbuild.testing.loopback import LoopbackServer, RecordingJournal, Response

__all__ = ["ProviderContract", "Sample"]

#: the statuses a refusal may come with; 429 and 503 are left out (an adapter may wait and retry those)
REFUSALS = (400, 401, 403, 404, 422, 500, 502)


@dataclass(frozen=True)
class Sample:
    """One job to run: a step of ``kind`` on catalogue ``model`` with ``params``, written to a ``suffix`` file.

    ``long`` says the service answers it as a job to poll (the adapter journals
    its id). ``params`` are the step's own; the model's defaults fill the rest.
    """

    kind: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    suffix: str = ""
    long: bool = False

    def __str__(self) -> str:
        return f"{self.model} ({self.kind})"


class ProviderContract:
    """The contract suite; subclass it (the name must start with ``Test``) and fill in the four members."""

    #: the adapter class under test
    provider: ClassVar[type[Provider]]
    #: a fake key the emulator accepts; the suite checks it never appears in an error
    key: ClassVar[str] = "contract-test-key"
    #: how long one generation may take
    timeout_s: ClassVar[float] = 60.0

    def emulator(self) -> LoopbackServer:
        """A fresh emulator of the service, not started (the suite enters it as a context manager)."""
        raise NotImplementedError

    def env(self, server: LoopbackServer, key: str) -> dict[str, str]:
        """The environment that points the adapter at ``server`` with ``key``."""
        raise NotImplementedError

    def samples(self, inputs: Path) -> list[Sample]:
        """Jobs to run, at least one per model; input files may be written under ``inputs``."""
        raise NotImplementedError

    # -- fixtures ---------------------------------------------------------------
    @pytest.fixture
    def server(self) -> Iterator[LoopbackServer]:
        with self.emulator() as server:
            yield server

    @pytest.fixture
    def adapter(self, server: LoopbackServer) -> Iterator[Provider]:
        made = self.provider(self.env(server, self.key))
        yield made
        made.close()  # as the runner does when a run ends

    @pytest.fixture
    def jobs(self, tmp_path: Path) -> list[Sample]:
        inputs = tmp_path / "inputs"
        inputs.mkdir()
        found = self.samples(inputs)
        assert found, "samples() returned no jobs"
        return found

    # -- helpers ----------------------------------------------------------------
    def catalogue(self) -> Mapping[str, Model]:
        return self.provider({}).catalogue()

    def job(self, sample: Sample, folder: Path) -> Job:
        """The Job the runner would make of ``sample``, its output in the empty ``folder``."""
        model = self.catalogue()[sample.model]
        defaults = {n: p.default for n, p in model.params_for(sample.kind).items() if p.default is not None}
        suffix = sample.suffix or _default_suffix(sample.kind)
        folder.mkdir(parents=True, exist_ok=True)
        return Job(sample.kind, model, {**defaults, **sample.params}, folder / f"result{suffix}", self.timeout_s)

    def run(self, adapter: Provider, sample: Sample, folder: Path, journal: RecordingJournal | None = None) -> Outcome:
        return adapter.generate(self.job(sample, folder), journal or RecordingJournal())

    def price_table(self) -> Mapping[str, Mapping[str, Any]]:
        """The adapter's prices: its own table, or acpbuild's registry for a built-in provider."""
        from acpbuild.money.prices import shipped_tables

        return self.provider.price_table() or shipped_tables().get(self.provider.name, {})

    # -- the contract -----------------------------------------------------------
    def test_declares_a_name_and_a_compatible_api(self) -> None:
        cls = self.provider
        assert cls.name and cls.name.isidentifier(), f"name {cls.name!r} must be an identifier"
        assert cls.api_version, "api_version is not set: say which acpbuild.provider API the adapter was written for"
        assert compatible(cls.api_version), f"api_version {cls.api_version} is not compatible with this acpbuild"

    def test_catalogue_and_prices_agree(self) -> None:
        from acpbuild.recipe.kinds import KINDS

        models = self.catalogue()
        assert models, "the catalogue is empty"
        problems: list[str] = []
        for key, model in models.items():
            if model.name != key:
                problems.append(f"catalogue key {key!r} holds a model named {model.name!r}")
            problems += [f"{key}: kind {k!r} is not one of acpbuild's kinds" for k in model.kinds if k not in KINDS]
            problems += [f"{key}.{name}: {why}" for name, param in model.params.items() for why in _param_faults(param)]
        problems += table_problems(self.price_table(), models, paid=self.provider.paid)
        assert not problems, "\n".join(problems)

    def test_problems_refuse_out_of_range_values_and_accept_the_samples(self, jobs: list[Sample]) -> None:
        cls = self.provider
        missed: list[str] = []
        for sample in jobs:
            model = self.catalogue()[sample.model]
            suffix = sample.suffix or _default_suffix(sample.kind)
            assert cls.problems(sample.kind, model, sample.params, suffix) == [], f"{sample} is refused"
            for name, param in model.params_for(sample.kind).items():
                for bad in _bad_values(param):
                    params = {**sample.params, name: bad}
                    if not cls.problems(sample.kind, model, params, suffix):
                        missed.append(f"{sample}: {name} = {bad!r} was accepted")
        assert not missed, "\n".join(missed)

    def test_generate_writes_exactly_one_file(
        self, adapter: Provider, server: LoopbackServer, jobs: list[Sample], tmp_path: Path
    ) -> None:
        from acpbuild.recipe.kinds import KINDS

        for n, sample in enumerate(jobs):
            folder = tmp_path / f"out{n}"
            journal = RecordingJournal()
            outcome = self.run(adapter, sample, folder, journal)
            job = self.job(sample, folder)
            assert isinstance(outcome, Outcome), f"{sample}: generate returned {outcome!r}"
            assert _files(folder) == [job.output], f"{sample}: wrote {_files(folder)}"
            assert job.output.stat().st_size > 0, f"{sample}: the output is empty"
            check_output(job.output, KINDS.get(sample.kind), provider=self.provider.name)
            if sample.long:
                assert len(journal.ids) == 1, f"{sample}: journalled {journal.ids}, not one request id"
            if self.provider.paid:
                cost = _cost(self, sample, outcome, job)
                assert cost is not None and cost > 0, f"{sample}: usage {outcome.usage} cannot be priced"

    def test_a_cut_answer_fails_and_leaves_no_file(
        self, adapter: Provider, server: LoopbackServer, jobs: list[Sample], tmp_path: Path
    ) -> None:
        for n, sample in enumerate(jobs):
            mark = len(server.requests)
            self.run(adapter, sample, tmp_path / f"first{n}")
            roles = {r.role for r in server.requests[mark:]}
            role = next((r for r in ("download", "result") if r in roles), "submit")
            body = b"\0" * 65536 if role == "download" else b'{"cut": "' + b"x" * 4096 + b'"}'
            kind = "application/octet-stream" if role == "download" else "application/json"
            server.fail_role(role, Response(200, body, {"Content-Type": kind}, truncate_to=1000), times=100)
            folder = tmp_path / f"cut{n}"
            with pytest.raises(ProviderError):
                self.run(adapter, sample, folder)
            server.failures.clear()
            assert _files(folder) == [], f"{sample}: a cut {role} answer left {_files(folder)}"

    def test_a_long_job_is_journalled_before_polling_and_resumed_without_resubmitting(
        self, adapter: Provider, server: LoopbackServer, jobs: list[Sample], tmp_path: Path
    ) -> None:
        for n, sample in enumerate(s for s in jobs if not s.long):
            # an adapter that cannot resume ignores a journalled id and submits once
            mark = len(server.requests)
            self.run(adapter, sample, tmp_path / f"quick{n}", RecordingJournal(resume_id="an-earlier-id"))
            sent = [r for r in server.requests[mark:] if r.role == "submit"]
            assert len(sent) == 1, f"{sample}: with a journalled id, {len(sent)} requests were submitted"
            assert _files(tmp_path / f"quick{n}"), f"{sample}: with a journalled id, no output was written"
        for n, sample in enumerate(s for s in jobs if s.long):
            mark = len(server.requests)
            journal = RecordingJournal()
            self.run(adapter, sample, tmp_path / f"first{n}", journal)
            polls = [r for r in server.requests[mark:] if r.role == "poll"]
            assert polls, f"{sample}: the emulator answered without a poll; make its jobs wait for one"
            assert journal.times and journal.times[0] < polls[0].at, f"{sample}: polled before journalling the id"
            mark = len(server.requests)
            resumed = RecordingJournal(resume_id=journal.ids[0])
            self.run(adapter, sample, tmp_path / f"resumed{n}", resumed)
            again = [r for r in server.requests[mark:] if r.role == "submit"]
            assert again == [], f"{sample}: resuming submitted again ({len(again)} requests)"
            assert _files(tmp_path / f"resumed{n}"), f"{sample}: resuming wrote no output"

    def test_no_error_holds_the_key(
        self, adapter: Provider, server: LoopbackServer, jobs: list[Sample], tmp_path: Path
    ) -> None:
        echo = {"error": {"message": f"invalid key {self.key}", "key": self.key}, "detail": f"key {self.key} refused"}
        for n, sample in enumerate(jobs):
            for status in REFUSALS:
                server.fail_role("submit", Response(status, echo), times=100)
                with pytest.raises(ProviderError) as caught:
                    self.run(adapter, sample, tmp_path / f"out{n}-{status}")
                server.failures.clear()
                shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
                assert self.key not in shown, f"{sample}: the key is in the error for a {status} answer:\n{shown}"

    def test_a_possibly_billed_request_is_sent_once(
        self, adapter: Provider, server: LoopbackServer, jobs: list[Sample], tmp_path: Path
    ) -> None:
        faults = {"a 500 answer": Response(500, {"error": "internal error"}), "no answer": Response(drop=True)}
        for n, sample in enumerate(jobs):
            for label, fault in faults.items():
                mark = len(server.requests)
                server.fail_role("submit", fault, times=100)
                folder = tmp_path / f"out{n}-{label.replace(' ', '-')}"
                with pytest.raises(ProviderError):
                    self.run(adapter, sample, folder)
                server.failures.clear()
                sent = [r for r in server.requests[mark:] if r.role == "submit"]
                assert len(sent) == 1, f"{sample}: after {label}, the request was sent {len(sent)} times"
                assert _files(folder) == [], f"{sample}: after {label}, {_files(folder)} was left"


def _cost(contract: ProviderContract, sample: Sample, outcome: Outcome, job: Job) -> float | None:
    """What the outcome costs by the adapter's prices (its own figure when it reports one)."""
    from acpbuild.money.prices import Price, cost_of_usage

    if outcome.actual_cost is not None:
        return outcome.actual_cost
    fields = contract.price_table().get(sample.model)
    if fields is None:
        return None
    return cost_of_usage(Price(provider=contract.provider.name, model=sample.model, **fields), outcome.usage, job.params)


def _default_suffix(kind: str) -> str:
    from acpbuild.recipe.kinds import KINDS, SUFFIXES

    return SUFFIXES[KINDS[kind]][0]


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder``, hidden ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _param_faults(param: Param) -> list[str]:
    faults = []
    if param.min is not None and param.max is not None and param.min > param.max:
        faults.append(f"min {param.min} is above max {param.max}")
    if param.choices is not None and not param.choices:
        faults.append("choices is empty")
    if param.default is not None and param.type not in ("image", "audio", "video", "file", "files"):
        why = param.check(param.default)
        if why:
            faults.append(f"the default {param.default!r} is refused: {why}")
    if param.required and param.default is not None:
        faults.append("a required parameter has a default")
    return faults


def _bad_values(param: Param) -> list[Any]:
    """Values ``param`` must refuse: of the wrong type, outside its choices, below or above its range."""
    bad: list[Any] = [{"not": "a value"}]
    if param.type in ("image", "audio", "video", "file", "files"):
        return bad
    if param.choices is not None:
        sample = param.choices[0]
        if isinstance(sample, str):
            bad.append("surely-not-a-choice")
        elif isinstance(sample, (int, float)) and not isinstance(sample, bool):
            bad.append(max(param.choices) + 1)
    if param.min is not None:
        bad.append(param.min - 1 if param.type == "int" else param.min - 0.5)
    if param.max is not None:
        bad.append(param.max + 1 if param.type == "int" else param.max + 0.5)
    return bad

