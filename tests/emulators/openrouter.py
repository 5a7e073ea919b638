"""An OpenRouter API emulator: chat completions and the key endpoint.

Speaks what the ``openai`` SDK sends when pointed at OpenRouter (PROVIDERS.md
section 4): ``Authorization: Bearer <key>``, ``POST /api/v1/chat/completions``
with a JSON body answered by one JSON chat completion (id ``gen-...``, usage
with ``cost`` in credits), and ``GET /api/v1/key``. Errors are JSON
``{"error": {"code", "message", "metadata"?}}`` like the real service's,
including the 403 moderation refusal and the 402 for missing credits.

It accepts what OpenRouter accepts and refuses what it refuses, from its
published reference. Its facts are its own copies (it never reads acpbuild's
catalogue):

| Rule | Answer | Source |
|---|---|---|
| ``model`` is a model id OpenRouter serves (:data:`MODELS`) | 400 "… is not a valid model ID", ``availability.code`` ``model_not_found`` | [1] "Model availability errors" (the example payload) |
| ``messages`` is a non-empty list of messages with a known ``role`` | 400 | [2] ``ChatRequest.messages`` (``minItems: 1``), [1] ``invalid_prompt`` |
| an ``image_url`` part's ``url`` is an ``https://`` (or ``http://``) URL or a base64 ``data:`` URL | https and data URLs are accepted; anything else 400 | [3] "The ``image_url`` can either be a URL or a base64-encoded image" |
| a ``data:`` image is PNG, JPEG, WebP or GIF | 400 ``unsupported_image_format`` | [3] "Supported image content types", [1] "Image errors" |
| an image goes only to a model that reads images | 404 "No endpoints found that support image input" | what OpenRouter answers (many public reports, e.g. hermes-agent#23411, goose#5396); [1] ``no_endpoints`` is a 404 |
| ``temperature`` 0..2, ``top_p`` 0..1, ``max_tokens`` an integer of 1 or more, ``seed`` an integer | 400 | [4] "Temperature", "Top P", "Max Tokens", "Seed" |
| ``reasoning.effort`` one of max, xhigh, high, medium, low, minimal, none | 400 | [2] ``ChatRequest.reasoning.effort`` |

OpenRouter ignores a sampling parameter that the model's provider does not
support rather than refusing it ([5] "Requiring Providers to Support All
Parameters"), so e.g. a ``temperature`` sent to a reasoning model passes here
too. The wording of the 400s for parameters out of range is the emulator's own
(OpenRouter documents the status, not the text).

[1] https://openrouter.ai/docs/api_reference/errors-and-debugging
[2] https://openrouter.ai/openapi.json (``openapi/openapi.yaml`` in
github.com/OpenRouterTeam/docs, 2026-08)
[3] https://openrouter.ai/docs/guides/overview/multimodal/image-understanding
[4] https://openrouter.ai/docs/api_reference/parameters
[5] https://openrouter.ai/docs/guides/routing/provider-selection
"""

from __future__ import annotations

import re
from typing import Any

from . import Emulator, Request, Response

KEY = "test-or-key-0000"

CHAT = r"/api/v1/chat/completions"
KEY_INFO = r"/api/v1/key"

# model id -> (USD per 1M input tokens, USD per 1M output tokens, reads images): each
# model's page on openrouter.ai ("Input modalities": image for the first four, text only
# for Llama 3.3 and DeepSeek V3)
MODELS: dict[str, tuple[float, float, bool]] = {
    "google/gemini-2.5-flash": (0.30, 2.50, True),
    "anthropic/claude-sonnet-4.5": (3.00, 15.00, True),
    "openai/gpt-4o-mini": (0.15, 0.60, True),
    "openai/gpt-5-mini": (0.25, 2.00, True),
    "meta-llama/llama-3.3-70b-instruct": (0.13, 0.40, False),
    "deepseek/deepseek-chat": (0.30, 0.85, False),
}

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
#: the image types a ``data:`` URL may carry ([3])
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
EFFORTS = frozenset({"max", "xhigh", "high", "medium", "low", "minimal", "none"})
_DATA_URL = re.compile(r"data:([\w/+.-]+);base64,[A-Za-z0-9+/=\s]+")

# A prompt containing this word is flagged by the emulated moderation.
FLAGGED_WORD = "forbidden"

REPLY_PREFIX = "Réponse ✓: "


def error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **fields: Any
) -> Response:
    """An OpenRouter error body; ``fields`` go next to code and message (e.g. metadata)."""
    body = {"error": {"code": status, "message": message, **fields}}
    return Response(status, body, dict(headers or {}))


def completion(
    content: str | None = "ok",
    *,
    finish_reason: str | None = "stop",
    gen_id: str = "gen-scripted",
    cost: float = 0.0001,
    choices: bool = True,
    **usage: Any,
) -> dict[str, Any]:
    """A chat completion body for scripted answers."""
    return {
        "id": gen_id,
        "provider": "Emulated",
        "model": "openai/gpt-4o-mini",
        "object": "chat.completion",
        "created": 1767225600,
        "choices": (
            [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "native_finish_reason": finish_reason,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                }
            ]
            if choices
            else []
        ),
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "cost": cost,
            "is_byok": False,
            **usage,
        },
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def refusal(body: dict[str, Any]) -> Response | None:
    """What OpenRouter answers to a chat request it refuses, else None (the docstring's table)."""
    model = body.get("model")
    if model not in MODELS:
        return error(
            400,
            f"{model} is not a valid model ID",
            error_type="invalid_request",
            availability={
                "code": "model_not_found",
                "retryable": False,
                "requested_models": [model],
                "docs_url": "https://openrouter.ai/docs/errors#model_not_found",
            },
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(400, "messages: Array must contain at least 1 element(s)")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return error(400, "messages: each message needs a role of " + ", ".join(sorted(ROLES)))
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(name)
        if value is not None and not (_number(value) and low <= value <= high):
            return error(400, f"{name}: expected a number from {low:g} to {high:g}, got {value!r}")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and not (_integer(value) and value >= 1):
            return error(400, f"{name}: expected an integer of 1 or more, got {value!r}")
    if body.get("seed") is not None and not _integer(body["seed"]):
        return error(400, f"seed: expected an integer, got {body['seed']!r}")
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        return error(400, f"reasoning.effort: expected one of {', '.join(sorted(EFFORTS))}")
    images = [url for m in messages for url in _text_of(m.get("content"))[1]]
    for url in images:
        if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:")):
            return error(400, "image_url.url must be a URL or a base64 data URL")
        if url.startswith("data:"):
            found = _DATA_URL.fullmatch(url)
            if found is None:
                return error(400, "image_url.url: a data URL must be data:<type>;base64,<data>")
            if found.group(1) not in IMAGE_TYPES:
                return error(
                    400,
                    f"Unsupported image format {found.group(1)}: send PNG, JPEG, WebP or GIF",
                    metadata={"error_type": "unsupported_image_format"},
                )
    if images and not MODELS[model][2]:
        return error(404, "No endpoints found that support image input")
    return None


def _text_of(content: Any) -> tuple[str, list[str]]:
    """The text and the image URLs of a message's content."""
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content or []:
        if part.get("type") == "text":
            texts.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            images.append((part.get("image_url") or {}).get("url", ""))
    return " ".join(texts), images


class OpenRouterEmulator(Emulator):
    """Counts chat completion requests in :attr:`submissions`."""

    def __init__(self, key: str = KEY) -> None:
        super().__init__()
        self.key = key
        #: the ``usage.cost`` of each completion answered, in order
        self.costs: list[float] = []
        self.route("POST", CHAT, self._chat, role="submit")
        self.route("GET", KEY_INFO, self._key_info)

    @property
    def submissions(self) -> int:
        return len(self.calls("POST", CHAT))

    def _refuse(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return error(401, "No auth credentials found")
        return None

    def _chat(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        body = request.json() or {}
        refused = refusal(body)
        if refused:
            return refused
        if body.get("stream"):
            return error(400, "this emulator answers streaming requests only in tests that ask")
        model = body["model"]
        price_in, price_out, _ = MODELS[model]
        messages = body["messages"]
        last_user = next((m for m in reversed(messages) if m["role"] == "user"), messages[-1])
        prompt, images = _text_of(last_user.get("content"))
        if FLAGGED_WORD in prompt.lower():
            return error(
                403,
                f"{model} requires moderation on OpenAI. Your input was flagged for "
                '"violence/graphic".',
                metadata={
                    "reasons": ["violence/graphic"],
                    "flagged_input": prompt[:100],
                    "provider_name": "OpenAI",
                    "model_slug": model,
                },
            )
        reply = REPLY_PREFIX + prompt + (f" [{len(images)} image]" if images else "")
        max_tokens = body.get("max_tokens")
        words = reply.split()
        if max_tokens is not None and len(words) > max_tokens:
            reply, finish = " ".join(words[:max_tokens]), "length"
        else:
            finish = "stop"
        tokens_in = sum(len(_text_of(m.get("content"))[0].split()) for m in messages)
        tokens_in += 258 * len(images)
        tokens_out = len(reply.split())
        reasoning = 7 if "reasoning" in body else 0
        tokens_out += reasoning
        cost = round((tokens_in * price_in + tokens_out * price_out) / 1e6, 10)
        answer = completion(
            reply,
            finish_reason=finish,
            gen_id=f"gen-{self.submissions}-emulated",
            cost=cost,
            prompt_tokens=tokens_in,
            completion_tokens=tokens_out,
            total_tokens=tokens_in + tokens_out,
            prompt_tokens_details={"cached_tokens": 0},
            completion_tokens_details={"reasoning_tokens": reasoning},
            cost_details={"upstream_inference_cost": None},
        )
        answer["model"] = model
        with self.lock:
            self.costs.append(cost)
        return Response(200, answer)

    def _key_info(self, request: Request, match: re.Match[str]) -> Response:
        if refused := self._refuse(request):
            return refused
        return Response(
            200,
            {
                "data": {
                    "label": f"{self.key[:7]}...{self.key[-3:]}",
                    "limit": 10.0,
                    "usage": 1.25,
                    "limit_remaining": 8.75,
                    "limit_reset": "monthly",
                    "is_free_tier": False,
                    "is_provisioning_key": False,
                }
            },
        )
