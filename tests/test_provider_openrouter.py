"""The OpenRouter adapter, driving the real ``openai`` SDK against a local emulator.

A chat completion is answered in the request that asks for it, so OpenRouter
has no long-running jobs and there is no resume test; nor is there a download
(the answer is the JSON body), so the truncation tests truncate that body.
Every test checks how many chat requests reached the emulator, because each
one may be billed.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from acpbuild.errors import (
    AuthError,
    BadResponse,
    MissingCredentials,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
)
from acpbuild.provider import Job
from acpbuild.providers.openrouter.adapter import OpenRouterProvider
from tests.emulators import Journal, Response
from tests.emulators.openrouter import (
    CHAT,
    FLAGGED_WORD,
    KEY,
    KEY_INFO,
    MODELS,
    REPLY_PREFIX,
    OpenRouterEmulator,
    completion,
    error,
)

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = OpenRouterProvider({}).catalogue()
VISION_MODELS = [k for k, m in CATALOGUE.items() if "image_understanding" in m.endpoints]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


@pytest.fixture(scope="module")
def server() -> Any:
    # One server per module: stopping one takes half a second (serve_forever's poll).
    with OpenRouterEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: OpenRouterEmulator) -> OpenRouterEmulator:
    """The emulator with an empty request log and no scripted failures."""
    server.reset()
    return server



def env_for(emu: OpenRouterEmulator | None, **extra: str) -> dict[str, str]:
    env = {
        "OPENROUTER_API_KEY": KEY,
        "ACPBUILD_RETRY_BASE_S": "0.01",
        "ACPBUILD_POLL_INTERVAL_S": "0.02",
    }
    if emu is not None:
        # The override replaces the whole API base, /api/v1 included.
        env["ACPBUILD_OPENROUTER_URL"] = f"{emu.url}/api/v1"
    env.update(extra)
    return env


def make_job(
    tmp_path: Path,
    model: str = "openai/gpt-4o-mini",
    kind: str = "text",
    output: str = "answer.txt",
    timeout_s: float = 30.0,
    **params: Any,
) -> Job:
    """A job as the runner builds it: parameters checked, defaults filled in."""
    entry = CATALOGUE[model]
    params.setdefault("prompt", "Say hello.")
    for name, value in params.items():
        assert entry.params[name].check(value) is None, name
    full = {n: p.default for n, p in entry.params_for(kind).items() if p.default is not None}
    full.update(params)
    return Job(kind, entry, full, tmp_path / output, timeout_s)


def leftovers(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def fail(emu: OpenRouterEmulator, response: Response, times: int = 1) -> None:
    emu.fail("POST", CHAT, response, times)


# -- successes -----------------------------------------------------------------


def test_text_maps_every_parameter(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    provider = OpenRouterProvider(env_for(emu))
    journal = Journal()
    job = make_job(
        tmp_path,
        model="google/gemini-2.5-flash",
        prompt="Name three rivers.",
        system="Answer tersely.",
        temperature=0.7,
        max_tokens=200,
        top_p=0.9,
        seed=7,
        reasoning_effort="low",
    )
    outcome = provider.generate(job, journal)

    assert job.output.read_text(encoding="utf-8") == REPLY_PREFIX + "Name three rivers."
    assert leftovers(tmp_path) == []
    assert journal.ids == []  # no long jobs: the journal is never used
    [chat] = emu.calls("POST", CHAT)
    assert chat.path == "/api/v1/chat/completions"
    assert chat.headers["authorization"] == f"Bearer {KEY}"
    assert chat.headers["http-referer"] == "acpbuild"
    assert chat.headers["x-title"] == "acpbuild"
    assert chat.headers["x-stainless-retry-count"] == "0"
    assert chat.json() == {
        "model": "google/gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "Answer tersely."},
            {"role": "user", "content": "Name three rivers."},
        ],
        "stream": False,  # one JSON answer, no SSE
        "max_tokens": 200,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 7,
        "reasoning": {"effort": "low"},  # OpenRouter's own field, sent via extra_body
    }
    assert outcome.request_id == "gen-1-emulated"
    # The emulator counts words as tokens: 5 in, 5 out plus 7 of reasoning,
    # and bills them at the model's price.
    assert outcome.usage == {"input_tokens": 5.0, "output_tokens": 12.0}
    assert outcome.actual_cost == pytest.approx((5 * 0.30 + 12 * 2.50) / 1e6)
    assert outcome.meta == {
        "finish_reason": "stop",
        "model": "google/gemini-2.5-flash",
        "upstream": "Emulated",
        "reasoning_tokens": 7,
    }


def test_defaults_are_sent_and_unset_parameters_are_not(
    emu: OpenRouterEmulator, tmp_path: Path
) -> None:
    OpenRouterProvider(env_for(emu)).generate(make_job(tmp_path), Journal())
    [chat] = emu.calls("POST", CHAT)
    assert chat.json() == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": False,
        "max_tokens": 4096,
    }


@pytest.mark.parametrize("model", sorted(CATALOGUE))
def test_every_model_answers_text(emu: OpenRouterEmulator, tmp_path: Path, model: str) -> None:
    job = make_job(tmp_path, model=model, prompt="Ping?")
    outcome = OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_text(encoding="utf-8") == REPLY_PREFIX + "Ping?"
    assert emu.calls("POST", CHAT)[0].json()["model"] == model
    assert outcome.actual_cost is not None and outcome.actual_cost > 0


def test_close_releases_the_clients_kept_for_the_run(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    provider = OpenRouterProvider(env_for(emu))
    provider.generate(make_job(tmp_path, output="a.txt"), Journal())
    provider.generate(make_job(tmp_path, output="b.txt"), Journal())
    (kept,) = provider._clients.values()  # one client per timeout, shared by the run's steps
    provider.close()
    assert kept.is_closed() and provider._clients == {}


@pytest.mark.parametrize("model", VISION_MODELS)
def test_image_understanding_inlines_the_image(
    emu: OpenRouterEmulator, tmp_path: Path, model: str
) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(PNG)
    job = make_job(
        tmp_path, model=model, kind="image_understanding", prompt="Describe it.", image=str(image)
    )
    outcome = OpenRouterProvider(env_for(emu)).generate(job, Journal())

    assert job.output.read_text(encoding="utf-8") == REPLY_PREFIX + "Describe it. [1 image]"
    [chat] = emu.calls("POST", CHAT)
    [message] = chat.json()["messages"]
    # Text first, then the image, as OpenRouter advises.
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Describe it."},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
            },
        ],
    }
    assert outcome.usage["input_tokens"] == 2 + 258


def test_jpeg_gets_its_own_mime_type(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 32)
    job = make_job(tmp_path, kind="image_understanding", image=str(image))
    OpenRouterProvider(env_for(emu)).generate(job, Journal())
    content = emu.calls("POST", CHAT)[0].json()["messages"][0]["content"]
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")


@pytest.mark.parametrize(
    "write, expected",
    [
        # not an image at all: refused before anything is sent
        (lambda p: p.write_text("hello"), "not PNG, JPEG, WebP or GIF"),
        # no such file
        (lambda p: None, "cannot read image"),
    ],
)
def test_bad_image_files_are_refused_locally(
    emu: OpenRouterEmulator, tmp_path: Path, write: Any, expected: str
) -> None:
    image = tmp_path / "in.png"
    write(image)
    job = make_job(tmp_path, kind="image_understanding", image=str(image))
    with pytest.raises(RequestRejected, match=expected) as caught:
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert caught.value.sent is False
    assert emu.submissions == 0


def test_text_only_models_do_not_serve_image_understanding(
    emu: OpenRouterEmulator, tmp_path: Path
) -> None:
    for model in ("meta-llama/llama-3.3-70b-instruct", "deepseek/deepseek-chat"):
        assert CATALOGUE[model].kinds == ("text",)
        assert "image" not in CATALOGUE[model].params
    entry = CATALOGUE["deepseek/deepseek-chat"]
    job = Job("image_understanding", entry, {"prompt": "x"}, tmp_path / "a.txt")
    with pytest.raises(RequestRejected, match="does not serve 'image_understanding'"):
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 0


def test_ping_reports_spend_and_limit_but_not_the_key(emu: OpenRouterEmulator) -> None:
    text = OpenRouterProvider(env_for(emu)).ping()
    assert text == "OpenRouter key: $1.2500 used; limit $10.00 ($8.7500 left)"
    assert KEY not in text and KEY[:7] not in text  # the label holds a fragment of the key
    [call] = emu.calls("GET", KEY_INFO)
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert emu.submissions == 0


def test_ping_translates_errors(emu: OpenRouterEmulator) -> None:
    with pytest.raises(AuthError, match="check OPENROUTER_API_KEY"):
        OpenRouterProvider(env_for(emu, OPENROUTER_API_KEY="test-or-wrong-0000")).ping()
    # A lookup is free, so even a 5xx is retried.
    emu.fail("GET", KEY_INFO, error(502, "bad gateway"))
    assert "limit $10.00" in OpenRouterProvider(env_for(emu)).ping()


# -- the catalogue and prices ---------------------------------------------------


@pytest.mark.parametrize(
    "model, param, value",
    [
        ("openai/gpt-4o-mini", "temperature", 2.5),  # above OpenRouter's 0..2
        ("anthropic/claude-sonnet-4.5", "temperature", 1.5),  # Anthropic stops at 1
        ("openai/gpt-4o-mini", "top_p", 1.2),
        ("openai/gpt-4o-mini", "max_tokens", 0),
        ("openai/gpt-4o-mini", "max_tokens", 100_000),  # above the model's output limit
        ("openai/gpt-4o-mini", "seed", "7"),  # wrong type
        ("openai/gpt-5-mini", "reasoning_effort", "extreme"),
    ],
)
def test_catalogue_rejects_wrong_parameters_at_load(model: str, param: str, value: Any) -> None:
    assert CATALOGUE[model].params[param].check(value) is not None


def test_catalogue_leaves_out_what_a_model_refuses() -> None:
    # Reasoning models refuse sampling knobs; Claude takes no seed or top_p;
    # non-reasoning models have no effort to set.
    assert "temperature" not in CATALOGUE["openai/gpt-5-mini"].params
    assert "top_p" not in CATALOGUE["anthropic/claude-sonnet-4.5"].params
    assert "seed" not in CATALOGUE["anthropic/claude-sonnet-4.5"].params
    assert "reasoning_effort" not in CATALOGUE["openai/gpt-4o-mini"].params
    assert "image" not in CATALOGUE["openai/gpt-4o-mini"].params_for("text")
    assert CATALOGUE["openai/gpt-4o-mini"].params_for("image_understanding")["image"].required


def test_every_model_has_a_price() -> None:
    prices = tomllib.loads((ROOT / "acpbuild/money/prices/openrouter.toml").read_text())["models"]
    assert set(prices) == set(CATALOGUE) == set(MODELS)
    for model, entry in prices.items():
        assert entry["unit"] == "1m_tokens", model
        assert 0 < entry["input_usd"] <= entry["output_usd"], model
        assert entry["source"] and entry["date"], model


# -- errors -----------------------------------------------------------------------


def test_missing_key_names_the_variable(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    env = env_for(emu)
    del env["OPENROUTER_API_KEY"]
    with pytest.raises(MissingCredentials, match="OPENROUTER_API_KEY") as caught:
        OpenRouterProvider(env).generate(make_job(tmp_path), Journal())
    assert caught.value.sent is False
    assert emu.requests == []


@pytest.mark.parametrize(
    "response, error_class, text",
    [
        # the key is refused
        (error(401, "User not found."), AuthError, "check OPENROUTER_API_KEY"),
        (error(403, "Key is disabled"), AuthError, "check OPENROUTER_API_KEY"),
        # out of credits: a plain 402 that the SDK has no class for
        (
            error(402, "Insufficient credits. Add more using https://openrouter.ai/credits"),
            PaymentRequired,
            "out of credits.*Insufficient credits",
        ),
        # the key's own spending cap
        (error(403, "Key limit exceeded"), PaymentRequired, "credit limit"),
        # the request itself is wrong: OpenRouter's message is passed on
        (
            error(400, "max_tokens: must be an integer"),
            RequestRejected,
            "rejected.*max_tokens: must be an integer",
        ),
        (
            error(404, "No endpoints found for openai/gpt-4o-mini."),
            RequestRejected,
            "No endpoints found",
        ),
        # the upstream's raw text says more than OpenRouter's summary
        (
            error(
                400,
                "Provider returned error",
                metadata={"raw": '{"message":"prompt is too long"}', "provider_name": "OpenAI"},
            ),
            RequestRejected,
            "Provider returned error \\(OpenAI: .*prompt is too long",
        ),
        # an upstream refusal passed through as a 400
        (
            error(400, "Your request was rejected as a result of our safety system."),
            RequestRejected,
            "refused by the content policy",
        ),
        # billable calls that failed on the server are not repeated
        (error(500, "Internal Server Error"), ServiceUnavailable, "try again later"),
        (error(502, "Provider returned error"), ServiceUnavailable, "HTTP 502"),
        (error(503, "No available providers"), ServiceUnavailable, "HTTP 503"),
        (error(408, "Request timed out"), ProviderTimeout, "HTTP 408"),
        # a non-JSON error page
        (Response(500, "<html>oops</html>"), ServiceUnavailable, "HTTP 500: <html>oops</html>"),
    ],
)
def test_service_errors_are_translated_and_never_repeated(
    emu: OpenRouterEmulator,
    tmp_path: Path,
    response: Response,
    error_class: type[ProviderError],
    text: str,
) -> None:
    fail(emu, response, times=5)
    job = make_job(tmp_path)
    with pytest.raises(error_class, match=text) as caught:
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert caught.value.status == response.status
    assert caught.value.provider == "openrouter"
    assert emu.submissions == 1
    assert not job.output.exists()
    assert leftovers(tmp_path) == []


def test_moderation_refusal_says_content_policy(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    job = make_job(tmp_path, prompt=f"Something {FLAGGED_WORD}.")
    with pytest.raises(RequestRejected) as caught:
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    message = str(caught.value)
    assert "refused by the content policy" in message
    assert "violence/graphic" in message
    assert "requires moderation" in message  # OpenRouter's own words
    assert caught.value.status == 403
    assert emu.submissions == 1
    assert not job.output.exists()


def test_429_is_retried_after_retry_after(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    fail(emu, error(429, "Rate limit exceeded", headers={"Retry-After": "0.3"}))
    job = make_job(tmp_path)
    started = time.monotonic()
    outcome = OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert time.monotonic() - started >= 0.3  # Retry-After was honoured
    chats = emu.calls("POST", CHAT)
    assert len(chats) == 2
    # Our policy retried, not the SDK's: each request is a first attempt to it.
    assert [c.headers["x-stainless-retry-count"] for c in chats] == ["0", "0"]
    assert outcome.request_id == "gen-2-emulated"
    assert job.output.exists()


def test_429_that_persists_becomes_rate_limited(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    fail(emu, error(429, "Rate limit exceeded", headers={"Retry-After": "0"}), times=10)
    env = env_for(emu, ACPBUILD_RETRY_ATTEMPTS="3")
    with pytest.raises(RateLimited, match="rate limited") as caught:
        OpenRouterProvider(env).generate(make_job(tmp_path), Journal())
    assert caught.value.sent is False
    assert caught.value.retry_after == 0
    assert emu.submissions == 3


def test_a_retry_after_too_long_to_wait_fails_at_once(
    emu: OpenRouterEmulator, tmp_path: Path
) -> None:
    fail(emu, error(429, "Rate limit exceeded", headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as caught:
        OpenRouterProvider(env_for(emu)).generate(make_job(tmp_path), Journal())
    assert caught.value.retry_after == 3600
    assert emu.submissions == 1


def test_a_slow_answer_times_out_without_a_second_request(
    emu: OpenRouterEmulator, tmp_path: Path
) -> None:
    fail(emu, Response(200, completion("late"), delay_s=1.0))
    job = make_job(tmp_path, timeout_s=0.3)
    with pytest.raises(ProviderTimeout, match="not repeated") as caught:
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert caught.value.sent is True  # the model may have run and billed
    assert emu.submissions == 1
    assert not job.output.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_retried_then_reported(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api/v1"
    env = env_for(None, ACPBUILD_OPENROUTER_URL=url, ACPBUILD_RETRY_ATTEMPTS="2")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="cannot connect") as caught:
        OpenRouterProvider(env).generate(make_job(tmp_path), Journal())
    assert caught.value.sent is False  # never reached OpenRouter, so retrying was safe
    assert time.monotonic() - started < 10


# -- malformed, truncated and empty answers ------------------------------------


@pytest.mark.parametrize(
    "response, text",
    [
        # the connection closes 40 bytes into a body that declared its full length
        (Response(200, completion("a whole answer"), truncate_to=40), "truncated"),
        # a complete body that is not JSON
        (
            Response(
                200, b'{"id": "gen-1", "choices": [{"mess', {"Content-Type": "application/json"}
            ),
            "not valid JSON",
        ),
        # an HTML page from a proxy in front of the API
        (Response(200, "<html>hi</html>", {"Content-Type": "text/html"}), "was not JSON"),
    ],
)
def test_truncated_or_garbled_answers_never_become_the_output(
    emu: OpenRouterEmulator, tmp_path: Path, response: Response, text: str
) -> None:
    fail(emu, response, times=5)
    job = make_job(tmp_path)
    with pytest.raises(BadResponse, match=text) as caught:
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    # The model ran, so the call may be billed: it is not sent again.
    assert caught.value.sent is True
    assert emu.submissions == 1
    assert not job.output.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "body, error_class, text",
    [
        # no choices at all
        (completion(choices=False), BadResponse, "no choices"),
        # a choice with nothing in it
        (completion(""), BadResponse, "empty"),
        (completion(None), BadResponse, "empty"),
        # the upstream's filter stopped the answer
        (completion("partial", finish_reason="content_filter"), RequestRejected, "content policy"),
        # all of max_tokens spent on reasoning
        (completion(None, finish_reason="length"), RequestRejected, "raise max_tokens"),
        # a 200 that carries an error instead of choices
        (
            {"id": "gen-x", "error": {"code": 502, "message": "upstream died"}},
            ServiceUnavailable,
            "upstream died",
        ),
    ],
)
def test_empty_answers_are_errors(
    emu: OpenRouterEmulator,
    tmp_path: Path,
    body: dict[str, Any],
    error_class: type[ProviderError],
    text: str,
) -> None:
    fail(emu, Response(200, body))
    job = make_job(tmp_path)
    with pytest.raises(error_class, match=text):
        OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert emu.submissions == 1
    assert not job.output.exists()
    assert leftovers(tmp_path) == []


def test_a_model_refusal_is_passed_on(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    body = completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    fail(emu, Response(200, body))
    with pytest.raises(RequestRejected, match="the model refused: I can't help with that"):
        OpenRouterProvider(env_for(emu)).generate(make_job(tmp_path), Journal())


def test_an_answer_cut_by_max_tokens_is_kept_and_says_so(
    emu: OpenRouterEmulator, tmp_path: Path
) -> None:
    job = make_job(tmp_path, prompt="one two three four five", max_tokens=3)
    outcome = OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_text(encoding="utf-8") == REPLY_PREFIX + "one"
    assert outcome.meta["finish_reason"] == "length"


def test_byok_cost_adds_the_upstream_inference(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    # With the user's own upstream key, usage.cost is only OpenRouter's fee.
    body = completion(
        "hi", cost=0.00001, is_byok=True, cost_details={"upstream_inference_cost": 0.0002}
    )
    fail(emu, Response(200, body))
    outcome = OpenRouterProvider(env_for(emu)).generate(make_job(tmp_path), Journal())
    assert outcome.actual_cost == pytest.approx(0.00021)
    assert outcome.meta["byok"] is True
    assert outcome.request_id == "gen-scripted"


def test_an_existing_output_is_replaced_whole(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    job = make_job(tmp_path, prompt="new")
    job.output.write_text("an old and much longer answer that must not survive in part")
    OpenRouterProvider(env_for(emu)).generate(job, Journal())
    assert job.output.read_text(encoding="utf-8") == REPLY_PREFIX + "new"


# -- secrets and imports ------------------------------------------------------------


def _texts(exc: BaseException) -> list[str]:
    """str and repr of an exception and of everything it was raised from."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


def test_no_error_text_contains_the_key(emu: OpenRouterEmulator, tmp_path: Path) -> None:
    raised: list[type[ProviderError]] = []

    def catch(call: Any) -> None:
        with pytest.raises(ProviderError) as caught:
            call()
        raised.append(type(caught.value))
        for text in _texts(caught.value):
            assert KEY not in text, text

    provider = OpenRouterProvider(env_for(emu))

    def run(**params: Any) -> None:
        provider.generate(make_job(tmp_path, **params), Journal())

    # Each error class, with the key echoed back by the "service" where it can be.
    for status in (400, 401, 402, 403, 404, 429, 500):
        response = error(status, f"bad key {KEY} (Bearer {KEY})", metadata={"raw": KEY})
        fail(emu, response, times=10)
        catch(run)
        emu.failures.clear()
    catch(lambda: run(prompt=f"{FLAGGED_WORD} {KEY}"))
    fail(emu, Response(200, completion(KEY), truncate_to=30))
    catch(run)
    fail(emu, Response(200, KEY, {"Content-Type": "application/json"}))
    catch(run)
    fail(emu, Response(200, completion(None, finish_reason="length")))
    catch(run)
    fail(emu, Response(200, completion("x"), delay_s=0.6))
    catch(lambda: provider.generate(make_job(tmp_path, timeout_s=0.2), Journal()))
    catch(lambda: OpenRouterProvider({}).generate(make_job(tmp_path), Journal()))
    closed = f"http://127.0.0.1:{_closed_port()}/api/v1"
    catch(
        lambda: OpenRouterProvider(
            env_for(None, ACPBUILD_OPENROUTER_URL=closed, ACPBUILD_RETRY_ATTEMPTS="1")
        ).generate(make_job(tmp_path), Journal())
    )
    emu.fail("GET", KEY_INFO, error(401, f"no such key {KEY}"))
    catch(provider.ping)
    assert set(raised) == {
        AuthError,
        BadResponse,
        MissingCredentials,
        PaymentRequired,
        ProviderTimeout,
        RateLimited,
        RequestRejected,
        ServiceUnavailable,
    }


def test_importing_the_adapter_does_not_import_the_sdk() -> None:
    code = (
        "import acpbuild.providers.openrouter.adapter, sys; "
        "assert 'openai' not in sys.modules and 'httpx2' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# In a fresh interpreter: the SDK builds its answer models lazily, at the first answer,
# and several threads building them at once can fail (-j 16 answers arriving together).
ANSWER_MODELS_BUILT = """
import typing, sys
from pathlib import Path
import pydantic
from tests.emulators.openrouter import KEY, OpenRouterEmulator
from tests.test_provider_openrouter import make_job
from acpbuild.providers.openrouter.adapter import OpenRouterProvider
from tests.emulators import Journal


def unbuilt(annotation, seen):
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        found = [] if annotation.__pydantic_complete__ else [annotation.__name__]
        return found + [n for f in annotation.model_fields.values() for n in unbuilt(f.annotation, seen)]
    return [n for inner in typing.get_args(annotation) for n in unbuilt(inner, seen)]


class Looking(OpenRouterEmulator):
    def _chat(self, request, match):
        from openai.types.chat import ChatCompletion

        self.unbuilt = unbuilt(ChatCompletion, set())  # as the request arrives: before any answer
        return super()._chat(request, match)


with Looking() as emu:
    env = {"OPENROUTER_API_KEY": KEY, "ACPBUILD_OPENROUTER_URL": f"{emu.url}/api/v1"}
    OpenRouterProvider(env).generate(make_job(Path(sys.argv[1])), Journal())
    assert emu.unbuilt == [], emu.unbuilt
"""


def test_the_sdks_answer_models_are_built_before_the_first_answer_arrives(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", ANSWER_MODELS_BUILT, str(tmp_path)], cwd=ROOT, check=True)

