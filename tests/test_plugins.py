"""Providers from outside acpbuild: a content repo's own adapter named in the config, an installed
package's entry point, and plugins that are broken. Each runs the real command line in a new process,
since the registry is per process, as a user's runs are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from acpbuild.provider import API_VERSION

# A paid provider that needs no network: it writes the prompt backwards, and
# counts its calls in the file ECHO_CALLS names (and its imports in ECHO_IMPORTS).
ECHO = '''
import os
from pathlib import Path

from acpbuild.provider import Model, Outcome, Param, Provider, files

if os.environ.get("ECHO_IMPORTS"):
    with open(os.environ["ECHO_IMPORTS"], "a") as f:
        f.write("imported\\n")


class EchoProvider(Provider):
    name = "echo"
    version = "1"
    api_version = "{api}"
    prices = "echo_prices.toml"
    key_vars = ()

    def catalogue(self):
        return {{
            "mirror": Model(
                "mirror",
                {{"text": "mirror-v1"}},
                {{"prompt": Param("str", required=True), "times": Param("int", default=1, min=1, max=3)}},
            ),
        }}

    def generate(self, job, journal):
        import time

        time.sleep(float(os.environ.get("ECHO_SLEEP", "0")))
        with open(os.environ["ECHO_CALLS"], "a") as f:
            f.write(job.params["prompt"] + "\\n")
        files.replace_file(job.output, job.params["prompt"][::-1] * job.params["times"])
        return Outcome(request_id="echo-1", usage={{"requests": 1}})
'''

PRICES = """
[models.mirror]
unit = "request"
usd = 0.25
source = "the echo service's price list"
date = "2026-12"
"""

RECIPE = """
[steps.one]
kind = "text"
provider = "echo"
model = "mirror"
prompt = "lighthouse"
output = "one.txt"

[steps.two]
kind = "text"
provider = "echo"
model = "mirror"
prompt = "harbour ${steps.one}"
times = 2
output = "two.txt"
"""

LOCAL_RECIPE = """
[steps.note]
kind = "text"
prompt = "a note"
output = "note.txt"
"""


def write_plugin(folder: Path, module: str = "studio_echo", api: str = "1.0") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(ECHO.format(api=api))
    (folder / "echo_prices.toml").write_text(PRICES)


class Project:
    """A content repo with its own config file and store, run through the installed command."""

    def __init__(self, root: Path, providers: list[str] | None = None, extra_path: Path | None = None) -> None:
        self.root = root
        (root / ".git").mkdir(parents=True)
        self.config = root / "config.toml"
        self.config.write_text(f"providers = {json.dumps(providers or [])}\n")
        self.calls = root / "calls.log"
        self.imports = root / "imports.log"
        self.env = {
            **os.environ,
            "ACPBUILD_CONFIG": str(self.config),
            "ACPBUILD_STORE": str(root / ".acpbuild"),
            "ECHO_CALLS": str(self.calls),
            "ECHO_IMPORTS": str(self.imports),
        }
        self.env.pop("PYTHONPATH", None)
        if extra_path is not None:
            self.env["PYTHONPATH"] = str(extra_path)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        # the console script, as a user runs it: the folder it runs in is not on Python's path by itself
        script = Path(sys.executable).parent / "acpbuild"
        command = [str(script)] if script.exists() else [sys.executable, "-c", "from acpbuild.cli import main; main()"]
        return subprocess.run(
            command + list(args), cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )

    def call_count(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_a_repo_own_provider_named_in_the_config_runs_is_priced_and_is_not_paid_for_twice(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    project = Project(tmp_path, ["studio_echo:EchoProvider"])
    (tmp_path / "recipe.toml").write_text(RECIPE)

    estimate = json.loads(ok(project("estimate", "recipe.toml", "--json")))
    assert estimate["totals"]["estimated"] == pytest.approx(0.50)  # two requests at the plugin's own $0.25
    refused = project("run", "recipe.toml", "--yes", "--budget", "0.30")
    assert refused.returncode != 0 and project.call_count() == 0, refused.stderr

    ok(project("run", "recipe.toml", "--yes"))
    assert (tmp_path / "out" / "one.txt").read_text() == "esuohthgil"
    assert (tmp_path / "out" / "two.txt").read_text() == "lighthouse ruobrah" * 2
    assert project.call_count() == 2

    # edit one prompt: exactly that step and its dependant run again
    (tmp_path / "recipe.toml").write_text(RECIPE.replace('"lighthouse"', '"beacon"'))
    ok(project("run", "recipe.toml", "--yes"))
    assert project.call_count() == 4
    ok(project("run", "recipe.toml", "--yes"))
    assert project.call_count() == 4

    costs = json.loads(ok(project("costs", "--json")))
    assert costs["totals"]["cost"] == pytest.approx(1.00)

    models = ok(project("models", "--provider", "echo"))
    assert "echo/mirror  [text]  $0.25 per request  (plugin studio_echo:EchoProvider (config))" in models
    doctor = project("doctor")
    assert "plugin echo" in doctor.stdout and "studio_echo:EchoProvider" in doctor.stdout


def test_two_overlapping_runs_of_a_plugin_recipe_pay_once(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    project = Project(tmp_path, ["studio_echo:EchoProvider"])
    project.env["ECHO_SLEEP"] = "1.5"
    (tmp_path / "recipe.toml").write_text(RECIPE)
    script = Path(sys.executable).parent / "acpbuild"
    runs = [
        subprocess.Popen(
            [str(script), "run", "recipe.toml", "--yes"], cwd=tmp_path, env=project.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, out[-2000:] + err[-2000:]
    assert project.call_count() == 2  # each step claimed by one run, restored by the other
    assert (tmp_path / "out" / "two.txt").read_text() == "lighthouse ruobrah" * 2


def test_a_recipe_that_names_no_plugin_imports_none(tmp_path: Path) -> None:
    write_plugin(tmp_path)
    project = Project(tmp_path, ["studio_echo:EchoProvider"])
    (tmp_path / "recipe.toml").write_text(LOCAL_RECIPE)
    ok(project("--version"))
    ok(project("run", "recipe.toml"))
    ok(project("run", "recipe.toml"))  # the no-op fast path
    ok(project("plan", "recipe.toml"))
    assert not project.imports.exists()
    ok(project("models"))  # listing every provider loads the plugins
    assert project.imports.read_text().splitlines() == ["imported"]


def test_broken_plugins_are_reported_and_skipped_and_stop_only_a_recipe_that_uses_them(tmp_path: Path) -> None:
    write_plugin(tmp_path, "newer_api", api="1.99")
    write_plugin(tmp_path, "unpriced")
    (tmp_path / "echo_prices.toml").write_text(PRICES.replace("models.mirror", "models.other"))
    (tmp_path / "raises.py").write_text("raise RuntimeError('the SDK is not installed')\n")
    (tmp_path / "clash.py").write_text(
        "from acpbuild.providers.local import LocalProvider\n\nclass Clash(LocalProvider):\n    name = 'fal'\n"
    )
    project = Project(
        tmp_path, ["raises:Thing", "newer_api:EchoProvider", "unpriced:EchoProvider", "clash:Clash", "nowhere:X"]
    )

    listing = project("models")
    assert listing.returncode == 0
    assert "local/" in listing.stdout and "echo/" not in listing.stdout
    warnings = [line for line in listing.stderr.splitlines() if line.startswith("warning:")]
    assert any("cannot import raises:Thing: RuntimeError: the SDK is not installed" in w for w in warnings)
    assert any(f"written for API 1.99; this acpbuild has API {API_VERSION}" in w for w in warnings)
    assert any("model 'mirror' has no price" in w for w in warnings)
    assert any("the name 'fal' is acpbuild's own" in w for w in warnings)
    assert any("cannot import nowhere:X: ModuleNotFoundError" in w for w in warnings)

    (tmp_path / "local.toml").write_text(LOCAL_RECIPE)
    ok(project("run", "local.toml"))
    (tmp_path / "recipe.toml").write_text(RECIPE)
    uses = project("run", "recipe.toml", "--yes")
    assert uses.returncode == 2
    assert "recipe.toml:4 [steps.one.provider]: provider plugin 'echo'" in uses.stderr
    assert "written for API 1.99" in uses.stderr or "has no price" in uses.stderr
    doctor = project("doctor")
    assert doctor.returncode == 1 and "FAIL plugin" in doctor.stdout


def test_an_installed_plugin_is_named_with_its_package_and_version(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site)
    dist = site / "acpbuild_echo-0.3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acpbuild-echo\nVersion: 0.3.1\n")
    (dist / "entry_points.txt").write_text("[acpbuild.providers]\necho = studio_echo:EchoProvider\n")
    project = Project(tmp_path / "repo", extra_path=site)

    models = json.loads(ok(project("models", "--provider", "echo", "--json")))
    assert [(m["model"], m["origin"], m["price"]) for m in models] == [
        ("mirror", "plugin acpbuild-echo 0.3.1", "$0.25 per request")
    ]
    info = json.loads(ok(project("info", "--json")))
    echo = next(p for p in info["providers"] if p["name"] == "echo")
    assert echo["origin"] == "plugin acpbuild-echo 0.3.1" and echo["models"] == ["mirror"]
    schema = json.loads(ok(project("schema")))
    assert "echo" in json.dumps(schema)
    (project.root / "recipe.toml").write_text(RECIPE)
    ok(project("run", "recipe.toml", "--yes"))
    assert project.call_count() == 2


CONTRACT_TEST = '''
import httpx
from acpbuild.provider import BadResponse, Model, Outcome, Param, Provider, ProviderError, files
from acpbuild.testing import LoopbackServer, ProviderContract, Response, Sample


class Service(LoopbackServer):
    def __init__(self):
        super().__init__()
        self.route("POST", "/v1/echo", self.echo, role="submit")

    def echo(self, request, match):
        if request.headers.get("authorization") != "Bearer test-echo-key":
            return Response(401, {{"error": "bad key"}})
        return Response(200, {{"text": request.json()["prompt"][::-1]}})


class Echo(Provider):
    name = "echo"
    api_version = "1.0"
    key_vars = ("ECHO_KEY",)
    url_var = "ECHO_URL"
    prices = "prices.toml"

    def catalogue(self):
        return {{"mirror": Model("mirror", {{"text": "mirror"}}, {{"prompt": Param("str", required=True)}})}}

    def generate(self, job, journal):
        key = self.api_key()
        tries = {tries}
        for attempt in range(tries):
            try:
                answer = httpx.post(self.base_url() + "/v1/echo", json={{"prompt": job.params["prompt"]}},
                                    headers={{"authorization": f"Bearer {{key}}"}}, timeout=5)
            except httpx.HTTPError as exc:
                {cut}
                if attempt + 1 < tries:
                    continue
                raise BadResponse("no answer", provider="echo") from None
            if answer.status_code >= 500 and attempt + 1 < tries:
                continue
            break
        if answer.status_code != 200:
            raise ProviderError({message}, provider="echo")
        try:
            text = answer.json()["text"]
        except ValueError:
            raise BadResponse("the answer was cut", provider="echo") from None
        files.replace_file(job.output, text)
        return Outcome(usage={{"requests": 1}})


class TestEchoContract(ProviderContract):
    provider = Echo
    key = "test-echo-key"

    def emulator(self):
        return Service()

    def env(self, server, key):
        return {{"ECHO_KEY": key, "ECHO_URL": server.url}}

    def samples(self, inputs):
        return [Sample("text", "mirror", {{"prompt": "lighthouse"}})]
'''

GOOD = {"tries": 1, "message": 'f"refused: HTTP {answer.status_code}"', "cut": "pass"}


@pytest.mark.parametrize(
    ("bug", "fails"),
    [
        ({}, set()),
        ({"tries": 3}, {"test_a_possibly_billed_request_is_sent_once"}),
        ({"message": 'f"refused: {answer.text}"'}, {"test_no_error_holds_the_key"}),
        (
            {"cut": '(job.output.parent / ".part").write_text("half")'},
            {"test_a_cut_answer_fails_and_leaves_no_file", "test_a_possibly_billed_request_is_sent_once"},
        ),
    ],
    ids=["a good adapter passes", "retries a billed request", "echoes the key", "leaves a partial file"],
)
def test_the_shipped_contract_suite_fails_exactly_the_contract_an_adapter_breaks(
    tmp_path: Path, bug: dict[str, object], fails: set[str]
) -> None:
    (tmp_path / "test_echo.py").write_text(CONTRACT_TEST.format(**{**GOOD, **bug}))
    (tmp_path / "prices.toml").write_text('[models.mirror]\nunit = "request"\nusd = 0.01\n')
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "test_echo.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    import xml.etree.ElementTree as ET

    cases = ET.parse(report).getroot().iter("testcase")
    outcome = {c.get("name"): "failed" if c.find("failure") is not None else "passed" for c in cases}
    assert len(outcome) == 8, outcome
    assert {name for name, result in outcome.items() if result == "failed"} == fails, textwrap.shorten(
        str(outcome), 2000
    )
