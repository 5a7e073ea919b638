"""Chat models on OpenRouter, through the official ``openai`` SDK.

One step is one ``POST {base}/chat/completions`` answered by one JSON body (no
streaming): the message content is written as UTF-8 text to ``job.output``
through a temporary file and a rename. ``text`` sends ``prompt`` (and an
optional ``system`` message); ``image_understanding`` also inlines the
``image`` file as a ``data:`` URL content part.

OpenRouter has no long-running jobs, so the
:class:`~acpbuild.provider.Journal` is unused: there is nothing to
resume, and a chat request that may have reached a model is never sent again
automatically. Only a refused connection or a 429 (neither billed) is retried.

OpenRouter reports what each call cost in ``usage.cost`` (credits, 1 credit =
1 USD); that figure becomes :attr:`Outcome.actual_cost`. The models and the
parameters each accepts live in :mod:`acpbuild.providers.openrouter.models`.

``ACPBUILD_OPENROUTER_URL`` replaces the whole API base the SDK talks to,
``/api/v1`` included (default ``https://openrouter.ai/api/v1``); a test points
it at ``http://127.0.0.1:PORT/api/v1``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from acpbuild.provider import (
    BadResponse,
    Job,
    Journal,
    MissingCredentials,
    Model,
    Outcome,
    PaymentRequired,
    Provider,
    ProviderError,
    ProviderTimeout,
    RequestRejected,
    ServiceUnavailable,
    redact,
)
from acpbuild.provider.wire import (
    Origins,
    RetryPolicy,
    common_status_error,
    image_mime,
    with_retries,
    write_atomic,
)
from acpbuild.providers.openrouter.models import CATALOGUE, VISION

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types.chat import ChatCompletion

T = TypeVar("T")

DEFAULT_URL = "https://openrouter.ai/api/v1"
# With ACPBUILD_OPENROUTER_URL, the only host the key is sent to.
OFFICIAL_HOSTS = ("openrouter.ai",)

# OpenRouter's optional app attribution headers.
ATTRIBUTION = {"HTTP-Referer": "acpbuild", "X-Title": "acpbuild"}

_PING_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
# An image is sent inline as base64 inside the JSON body; past this size the
# upstream providers refuse it anyway (OpenAI's cap is 20 MB per image).
_MAX_IMAGE_BYTES = 20 * 1024 * 1024



# -- the provider -----------------------------------------------------------------


class OpenRouterProvider(Provider):
    """Text and image understanding on OpenRouter. See the module docstring."""

    name = "openrouter"
    version = "1"
    api_version = "1.0"
    key_vars = ("OPENROUTER_API_KEY",)
    url_var = "ACPBUILD_OPENROUTER_URL"
    concurrency = 8

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._clients: dict[float, OpenAI] = {}
        self._clients_lock = threading.Lock()

    def catalogue(self) -> Mapping[str, Model]:
        return CATALOGUE

    def generate(self, job: Job, journal: Journal) -> Outcome:
        """Ask the model and write its answer to ``job.output``.

        ``journal`` is unused: a chat completion is answered in the same
        request, so there is never a job to resume.
        """
        if job.kind not in job.model.endpoints:
            raise RequestRejected(
                f"{job.model.name} does not serve {job.kind!r} "
                f"(it serves {', '.join(job.model.kinds)})",
                provider=self.name,
                sent=False,
            )
        request = self._request(job)
        policy = RetryPolicy.from_env(self.env)
        with self._client(job.timeout_s) as client:
            completion = with_retries(
                lambda: self._chat(client, request), policy=policy, billable=True
            )
        text, meta = self._answer(completion)
        write_atomic(job.output, text.encode("utf-8"), provider=self.name)
        usage, cost = _usage(completion)
        meta.update(_usage_meta(completion))
        return Outcome(request_id=completion.id or None, actual_cost=cost, usage=usage, meta=meta)

    def _request(self, job: Job) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``job``."""
        params = job.params
        content: str | list[dict[str, Any]] = params["prompt"]
        if job.kind == VISION:
            # OpenRouter advises the text part first, then the images.
            content = [
                {"type": "text", "text": params["prompt"]},
                {"type": "image_url", "image_url": {"url": self._data_url(params["image"])}},
            ]
        messages: list[dict[str, Any]] = []
        if params.get("system"):
            messages.append({"role": "system", "content": params["system"]})
        messages.append({"role": "user", "content": content})
        request: dict[str, Any] = {
            "model": job.model.endpoints[job.kind],
            "messages": messages,
            "stream": False,
        }
        for name in ("max_tokens", "temperature", "top_p", "seed"):
            if params.get(name) is not None:
                request[name] = params[name]
        if params.get("reasoning_effort"):
            # OpenRouter's unified reasoning control, mapped per upstream model.
            request["extra_body"] = {"reasoning": {"effort": params["reasoning_effort"]}}
        return request

    def _data_url(self, path: str | Path) -> str:
        file = Path(path)
        try:
            size = file.stat().st_size
            if size > _MAX_IMAGE_BYTES:
                raise RequestRejected(
                    f"image {file.name!r} is {size / 2**20:.1f} MB; "
                    f"send at most {_MAX_IMAGE_BYTES // 2**20} MB",
                    provider=self.name,
                    sent=False,
                )
            data = file.read_bytes()
        except OSError as exc:
            raise RequestRejected(
                f"cannot read image {str(file)!r}: {exc.strerror or exc}",
                provider=self.name,
                sent=False,
            ) from exc
        mime = image_mime(data)
        if mime is not None:
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        raise RequestRejected(
            f"image {file.name!r} is not PNG, JPEG, WebP or GIF", provider=self.name, sent=False
        )

    def _chat(self, client: OpenAI, request: dict[str, Any]) -> ChatCompletion:
        """One billable request, its exceptions translated."""
        import openai
        from openai.types.chat import ChatCompletion

        try:
            completion = client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise self._translate(exc, billable=True) from exc
        except ValueError as exc:  # the body was not JSON
            raise BadResponse(
                f"the answer was not valid JSON ({type(exc).__name__}); "
                "the call may have been billed, so it was not repeated",
                provider=self.name,
            ) from exc
        if not isinstance(completion, ChatCompletion):  # a non-JSON body comes back as text
            raise BadResponse(
                "the answer was not JSON; check ACPBUILD_OPENROUTER_URL points at an OpenRouter "
                "API base ending in /api/v1",
                provider=self.name,
            )
        return completion

    def _answer(self, completion: ChatCompletion) -> tuple[str, dict[str, Any]]:
        """The message text, or the error that says why there is none."""
        p = self.name
        extra = completion.model_extra or {}
        # OpenRouter can answer 200 with an error object instead of choices
        # when the upstream model fails after the request was accepted.
        if isinstance(extra.get("error"), Mapping):
            error = self._translate_status(
                _int(extra["error"].get("code")) or 502, extra["error"], {}, billable=True
            )
            raise error
        choices = completion.choices or []
        if not choices:
            raise BadResponse("the answer held no choices", provider=p)
        choice = choices[0]
        reason = choice.finish_reason
        native = (choice.model_extra or {}).get("native_finish_reason")
        content = choice.message.content if choice.message is not None else None
        meta: dict[str, Any] = {"finish_reason": reason}
        if native and native != reason:
            meta["native_finish_reason"] = native
        if reason == "content_filter":
            raise RequestRejected(
                "refused by the model's content policy (finish_reason content_filter); "
                "change the prompt",
                provider=p,
            )
        if not content:
            refusal = getattr(choice.message, "refusal", None)
            if refusal:
                said = redact(str(refusal), self.env)[:300]
                raise RequestRejected(f"the model refused: {said}", provider=p)
            if reason == "length":
                raise RequestRejected(
                    "the model used all of max_tokens before writing an answer "
                    "(reasoning counts too); raise max_tokens or lower reasoning_effort",
                    provider=p,
                )
            raise BadResponse(f"the answer was empty (finish_reason {reason!r})", provider=p)
        return content, meta

    # -- ping -----------------------------------------------------------------
    def ping(self) -> str:
        """Read ``GET /key``: this key's spend and limit (free; the key is not shown)."""
        import openai

        with self._client(_PING_TIMEOUT_S) as client:

            def once() -> Any:
                try:
                    return client.get("/key", cast_to=object)
                except openai.OpenAIError as exc:
                    raise self._translate(exc, billable=False) from exc
                except ValueError as exc:
                    raise BadResponse(
                        "the key information was not valid JSON", provider=self.name, sent=False
                    ) from exc

            answer = with_retries(once, policy=RetryPolicy.from_env(self.env), billable=False)
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, Mapping):
            raise BadResponse("the key information had no 'data'", provider=self.name, sent=False)
        # Deliberately not the 'label': it holds a fragment of the key.
        used, limit = _float(data.get("usage")), _float(data.get("limit"))
        remaining = _float(data.get("limit_remaining"))
        spent = f"${used:,.4f} used" if used is not None else "usage unknown"
        if limit is None:
            cap = "no credit limit on this key"
        else:
            left = remaining if remaining is not None else limit - (used or 0.0)
            cap = f"limit ${limit:,.2f} (${left:,.4f} left)"
        tier = " (free tier)" if data.get("is_free_tier") else ""
        return f"OpenRouter key{tier}: {spent}; {cap}"

    # -- plumbing -------------------------------------------------------------
    @contextlib.contextmanager
    def _client(self, timeout_s: float) -> Iterator[OpenAI]:
        """An SDK client with our key, endpoint and no retries of its own.

        One client per timeout is kept for the provider's life and shared by the
        run's threads (the SDK's clients are thread-safe): building one costs
        about 20 ms of CPU (its TLS context), which many parallel steps would
        otherwise pay one after another.
        """
        key = self.api_key()
        if not key:
            raise MissingCredentials(
                "no API key: set OPENROUTER_API_KEY in the environment or in .env",
                provider=self.name,
                sent=False,
            )
        with self._clients_lock:
            client = self._clients.get(timeout_s)
            if client is None:
                from openai import DefaultHttpxClient, OpenAI, Timeout

                # httpx drops Authorization on a redirect to another host, but would
                # still post the prompt there: the guard refuses such a redirect.
                guard = self.origins().guard(provider=self.name, what="redirect")
                client = OpenAI(
                    api_key=key,
                    base_url=self.base_url() or DEFAULT_URL,
                    default_headers=ATTRIBUTION,
                    max_retries=0,  # wire.with_retries is the only retry policy
                    timeout=Timeout(timeout_s, connect=min(_CONNECT_TIMEOUT_S, timeout_s)),
                    http_client=_closing(DefaultHttpxClient)(event_hooks={"request": [guard]}),
                )
                # OPENAI_ORG_ID / OPENAI_PROJECT_ID belong to api.openai.com accounts;
                # they are not sent to OpenRouter.
                client.organization = None
                client.project = None
                self._clients[timeout_s] = client
                _build_models()
        yield client

    def close(self) -> None:
        """Close the SDK clients kept for the run, and their connection pools."""
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def origins(self) -> Origins:
        """Where the key may go: ``ACPBUILD_OPENROUTER_URL`` or openrouter.ai."""
        return Origins(self.base_url() or DEFAULT_URL, OFFICIAL_HOSTS)

    def _translate(self, exc: Exception, *, billable: bool) -> ProviderError:
        """Map one SDK exception onto acpbuild's error tree."""
        import httpx2
        import openai

        if isinstance(exc.__cause__, ProviderError):  # our own guard refused a redirect
            return exc.__cause__
        p = self.name
        if isinstance(exc, openai.APIStatusError):
            self._scrub(exc)
            return self._translate_status(
                exc.status_code, exc.body, exc.response.headers, billable=billable
            )
        cause = exc.__cause__
        if isinstance(exc, openai.APITimeoutError):
            if isinstance(cause, httpx2.ConnectTimeout):
                return ProviderTimeout(
                    "timed out connecting to OpenRouter; check the network or "
                    "ACPBUILD_OPENROUTER_URL",
                    provider=p,
                    sent=False,
                )
            return ProviderTimeout(
                "OpenRouter did not answer in time; the model may have run (and billed), "
                "so the request was not repeated; raise the step's timeout",
                provider=p,
                sent=True,
            )
        if isinstance(exc, openai.APIConnectionError):
            if isinstance(cause, httpx2.ConnectError):
                return ServiceUnavailable(
                    "cannot connect to OpenRouter; check the network or ACPBUILD_OPENROUTER_URL",
                    provider=p,
                    sent=False,
                )
            if isinstance(cause, httpx2.RemoteProtocolError):
                return BadResponse(
                    "the answer was truncated: the connection closed before the whole body "
                    "arrived; it may have been billed, so it was not repeated",
                    provider=p,
                )
            return ServiceUnavailable(
                f"the connection to OpenRouter failed ({type(cause or exc).__name__}) after "
                "the request was sent, so it was not repeated",
                provider=p,
            )
        return BadResponse(f"could not read OpenRouter's answer ({type(exc).__name__})", provider=p)

    def _translate_status(
        self, status: int, body: Any, headers: Mapping[str, str], *, billable: bool
    ) -> ProviderError:
        p = self.name
        message, metadata = _error_fields(body)
        said = redact(f"HTTP {status}" + (f": {message}" if message else ""), self.env)
        if status == 402:
            return PaymentRequired(
                f"out of credits ({said}); add credits at https://openrouter.ai/settings/credits",
                provider=p,
                status=status,
                sent=False,
            )
        if status == 403 and _is_moderation(message, metadata):
            reasons = metadata.get("reasons")
            why = f" for {', '.join(map(str, reasons))}" if isinstance(reasons, list) else ""
            return RequestRejected(
                f"refused by the content policy: moderation flagged the input{why} ({said}); "
                "change the prompt or image",
                provider=p,
                status=status,
                sent=False,
            )
        if status == 403 and "limit" in message.lower():
            return PaymentRequired(
                f"this key's credit limit is reached ({said}); raise it at "
                "https://openrouter.ai/settings/keys",
                provider=p,
                status=status,
                sent=False,
            )
        common = common_status_error(
            status,
            said,
            provider=p,
            service="OpenRouter",
            key_var="OPENROUTER_API_KEY",
            headers=headers,
            billable=billable,
            timeout_text="the model did not answer in time",
        )
        if common is not None:
            return common
        if status >= 500:
            # OpenRouter does not promise that a failed upstream call is free,
            # so a billable request is not repeated (sent=True).
            return ServiceUnavailable(
                f"OpenRouter or the model's provider failed ({said}); try again later",
                provider=p,
                status=status,
                sent=True,
            )
        if _is_policy_refusal(message):
            return RequestRejected(
                f"refused by the content policy ({said}); change the prompt",
                provider=p,
                status=status,
                sent=False,
            )
        return RequestRejected(
            f"the request was rejected ({said})", provider=p, status=status, sent=False
        )

    def _scrub(self, exc: Any) -> None:
        """Keep the key out of the chained SDK exception's text too."""
        key = self.api_key()
        if not key:
            return
        text = str(exc)
        if key in text:
            exc.args = (redact(text, self.env),)
            exc.message = redact(str(exc.message), self.env)
        if key in json.dumps(exc.body, default=str):
            exc.body = json.loads(redact(json.dumps(exc.body, default=str), self.env))


# -- helpers ----------------------------------------------------------------------


def _usage(completion: ChatCompletion) -> tuple[dict[str, float], float | None]:
    """Token counts, and the provider-reported USD cost."""
    usage = completion.usage
    if usage is None:
        return {}, None
    counts = {
        "input_tokens": float(usage.prompt_tokens or 0),
        "output_tokens": float(usage.completion_tokens or 0),
    }
    extra = usage.model_extra or {}
    cost = _float(extra.get("cost"))
    if cost is not None and extra.get("is_byok"):
        # With your own upstream key, 'cost' is only OpenRouter's fee; the
        # upstream provider bills the inference itself.
        upstream = _float((extra.get("cost_details") or {}).get("upstream_inference_cost"))
        if upstream is not None:
            cost += upstream
    return counts, cost


def _usage_meta(completion: ChatCompletion) -> dict[str, Any]:
    """Small facts for the ledger: who served the call and how the tokens split."""
    meta: dict[str, Any] = {"model": completion.model}
    upstream = (completion.model_extra or {}).get("provider")
    if upstream:
        meta["upstream"] = upstream
    usage = completion.usage
    if usage is not None:
        details = usage.completion_tokens_details
        if details is not None and details.reasoning_tokens:
            meta["reasoning_tokens"] = details.reasoning_tokens
        cached = usage.prompt_tokens_details
        if cached is not None and cached.cached_tokens:
            meta["cached_tokens"] = cached.cached_tokens
        if (usage.model_extra or {}).get("is_byok"):
            meta["byok"] = True
    return meta


def _error_fields(body: Any) -> tuple[str, dict[str, Any]]:
    """OpenRouter's error ``message`` (with the upstream's raw text) and ``metadata``."""
    if isinstance(body, Mapping):
        metadata = body.get("metadata")
        metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
        message = str(body.get("message") or "")
        raw = metadata.get("raw")
        if raw:
            # "Provider returned error" says little; the upstream's own text says why.
            raw_text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
            where = metadata.get("provider_name")
            message += f" ({where}: " if where else " ("
            message += " ".join(raw_text.split())[:300] + ")"
        return message[:500], metadata
    text = body if isinstance(body, str) else ("" if body is None else str(body))
    return " ".join(text.split())[:300], {}


def _is_moderation(message: str, metadata: Mapping[str, Any]) -> bool:
    return (
        "reasons" in metadata
        or "flagged_input" in metadata
        or any(word in message.lower() for word in ("moderation", "flagged"))
    )


def _is_policy_refusal(message: str) -> bool:
    # Upstream refusals passed through as 400s use these words.
    text = message.lower()
    return any(
        word in text for word in ("content policy", "content_policy", "safety system", "moderation")
    )




def _closing(cls: type[T]) -> type[T]:
    """``cls`` (an httpx client class) closing its connections when collected, as the
    SDK's own client does; a client passed in is otherwise never closed."""

    class Closing(cls):  # type: ignore[valid-type,misc]
        def __del__(self) -> None:
            with contextlib.suppress(Exception):
                self.close()

    return Closing


def _float(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_models_built = threading.Lock()


@functools.cache
def _build_models() -> None:
    """Build the SDK's answer models now, on one thread, once a process.

    They are built lazily on first use, and building one from several threads at
    once can fail ("BaseModel cannot be instantiated directly"): -j 16 answers
    arriving together would each build them.
    """
    import typing

    import pydantic
    from openai.types.chat import ChatCompletion

    seen: set[type] = set()

    def build(annotation: object) -> None:  # under _models_built
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            if annotation not in seen:
                seen.add(annotation)
                annotation.model_rebuild()
                for field in annotation.model_fields.values():
                    build(field.annotation)
            return
        for inner in typing.get_args(annotation):
            build(inner)

    with _models_built:
        build(ChatCompletion)
