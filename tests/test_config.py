"""Where settings come from: keys from the environment and ``.env`` files, the user's config file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import platformdirs
import pytest

from acpbuild.config.secrets import environment, masked_url, read_dotenv, redact
from acpbuild.config.user import config_path
from acpbuild.errors import RecipeError
from acpbuild.store import layout


def _dotenv(folder: Path, text: str) -> dict[str, str]:
    (folder / ".env").write_text(text, encoding="utf-8")
    return read_dotenv(folder / ".env")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a quoted value may span lines
        ('CERT="line one\nline two"\n', {"CERT": "line one\nline two"}),
        # escapes in double quotes: a quote and a newline
        ('SAY="she said \\"hi\\"\\nbye"\n', {"SAY": 'she said "hi"\nbye'}),
        # single quotes keep backslashes as written
        ("RAW='C:\\new\\table'\n", {"RAW": "C:\\new\\table"}),
        # ${VAR} expands from an earlier line, and ${VAR:-default} when nothing sets it
        (
            "HOST=example.org\nURL=https://${HOST}/v1\nTIER=${ACPBUILD_UNSET_TIER:-free}\n",
            {"HOST": "example.org", "URL": "https://example.org/v1", "TIER": "free"},
        ),
        # export, comments, blank lines; a name without "=" sets nothing
        ("# keys for this repo\n\nexport A=1  # inline comment\nB\n", {"A": "1"}),
    ],
)
def test_dotenv_is_read_as_other_tools_read_it(tmp_path: Path, text: str, expected: dict[str, str]) -> None:
    assert _dotenv(tmp_path, text) == expected


def test_dotenv_expands_from_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACPBUILD_TEST_REGION", "eu")
    assert _dotenv(tmp_path, "URL=https://${ACPBUILD_TEST_REGION}.example.org\n") == {
        "URL": "https://eu.example.org"
    }


def test_no_dotenv_file_is_no_variables(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}
    (tmp_path / "dir.env").mkdir()
    assert read_dotenv(tmp_path / "dir.env") == {}


def test_the_process_environment_wins_then_the_first_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "recipe", tmp_path / "cwd"
    first.mkdir()
    second.mkdir()
    _dotenv(first, "ACPBUILD_T_A=first\nACPBUILD_T_B=first\n")
    _dotenv(second, "ACPBUILD_T_A=second\nACPBUILD_T_C=second\n")
    monkeypatch.setenv("ACPBUILD_T_B", "process")
    env = environment((first, second))
    assert (env["ACPBUILD_T_A"], env["ACPBUILD_T_B"], env["ACPBUILD_T_C"]) == ("first", "process", "second")


def test_a_malformed_dotenv_logs_no_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "fal-secret-in-a-broken-line"
    with caplog.at_level(logging.DEBUG):
        values = _dotenv(tmp_path, f'FAL_KEY="{secret}\nB=2\n{{not a line {secret}\n')
    assert "could not parse" in caplog.text and secret not in caplog.text
    assert values == {"B": "2"}  # the broken lines set nothing


def test_keys_are_redacted_from_text() -> None:
    env = {"FAL_KEY": "fal-secret-1234", "MOOD": "calm"}
    assert redact("sent fal-secret-1234 feeling calm", env) == "sent *** feeling calm"


def test_acpbuild_config_names_the_file() -> None:
    assert config_path({"ACPBUILD_CONFIG": "~/cfg/acpbuild.toml", "HOME": "/h"}) == Path(
        "~/cfg/acpbuild.toml"
    ).expanduser()


def test_the_process_environment_finds_the_platforms_own_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACPBUILD_CONFIG")
    native = platformdirs.user_config_path("acpbuild", appauthor=False, roaming=True)
    assert config_path(dict(os.environ)) == native / "config.toml"


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG folders are Linux's")
@pytest.mark.parametrize("xdg", [None, "config-home"])
def test_on_linux_the_folder_is_xdgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str | None) -> None:
    monkeypatch.delenv("ACPBUILD_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / xdg))
        expected = tmp_path / xdg / "acpbuild" / "config.toml"
    else:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
        expected = tmp_path / ".config" / "acpbuild" / "config.toml"
    assert config_path(dict(os.environ)) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # a home of its own, and a config home of its own
        ({"HOME": "/elsewhere"}, "/elsewhere/.config/acpbuild/config.toml"),
        ({"HOME": "/elsewhere", "XDG_CONFIG_HOME": "/xdg"}, "/xdg/acpbuild/config.toml"),
        # no home at all (an API caller's env={}): no config file is read
        ({}, None),
    ],
)
def test_an_environment_of_its_own_is_read_for_its_home(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    monkeypatch.setenv("HOME", "/process/home")
    assert config_path(env) == (Path(expected) if expected else None)


def test_the_shared_ledger_and_remote_come_from_the_environment_then_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('ledger = "postgresql://team@db.internal/acp"\nremote = "s3://media/acp"\n')
    env = {"ACPBUILD_CONFIG": str(config)}
    assert (layout.ledger_url(env), layout.remote_url(env)) == ("postgresql://team@db.internal/acp", "s3://media/acp")
    env |= {"ACPBUILD_LEDGER": "postgresql://ci@other/acp", "ACPBUILD_REMOTE": "s3://ci-cache"}
    assert (layout.ledger_url(env), layout.remote_url(env)) == ("postgresql://ci@other/acp", "s3://ci-cache")
    assert layout.ledger_url({"ACPBUILD_CONFIG": os.devnull}) is None
    assert layout.remote_url({"ACPBUILD_CONFIG": os.devnull}) is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("ledger = 5", "ledger must be a URL starting with postgresql://"),
        ('ledger = "mysql://db/acp"', "ledger must be a URL starting with postgresql://"),
        ('remote = "gs://bucket"', "remote must be a URL starting with s3://"),
        ('remotes = "s3://bucket"', "unknown key 'remotes'"),
    ],
)
def test_a_bad_shared_setting_names_the_config_file(tmp_path: Path, line: str, says: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(line + "\n")
    with pytest.raises(RecipeError, match=says) as raised:
        layout.ledger_url({"ACPBUILD_CONFIG": str(config)})
    assert str(config) in str(raised.value)


def test_a_url_shows_without_its_password() -> None:
    assert masked_url("postgresql://team:pa@ss:w0rd@db:5432/acp") == "postgresql://team:***@db:5432/acp"
    assert masked_url("postgresql://team@db/acp") == "postgresql://team@db/acp"
    assert masked_url("s3://bucket/prefix") == "s3://bucket/prefix"
