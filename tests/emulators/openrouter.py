"""An OpenRouter API emulator: chat completions and the key endpoint.

Speaks what the ``openai`` SDK sends when pointed at OpenRouter (PROVIDERS.md
section 4): ``Authorization: Bearer <key>``, ``POST /api/v1/chat/completions``
with a JSON body answered by one JSON chat completion (id ``gen-...``, usage
with ``cost`` in credits), and ``GET /api/v1/key``. Errors are JSON
``{"error": {"code", "message", "metadata"?}}`` like the real service's,
including the 403 moderation refusal and the 402 for missing credits.
"""

from __future__ import annotations

import re
from typing import Any

from . import Emulator, Request, Response

KEY = "test-or-key-0000"

CHAT = r"/api/v1/chat/completions"
KEY_INFO = r"/api/v1/key"

# model id -> (USD per 1M input tokens, USD per 1M output tokens, reads images)
MODELS: dict[str, tuple[float, float, bool]] = {
    "google/gemini-2.5-flash": (0.30, 2.50, True),
    "anthropic/claude-sonnet-4.5": (3.00, 15.00, True),
    "openai/gpt-4o-mini": (0.15, 0.60, True),
    "openai/gpt-5-mini": (0.25, 2.00, True),
    "meta-llama/llama-3.3-70b-instruct": (0.13, 0.40, False),
    "deepseek/deepseek-chat": (0.30, 0.85, False),
}

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
        model = body.get("model")
        if model not in MODELS:
            return error(400, f"{model} is not a valid model ID")
        if body.get("stream"):
            return error(400, "this emulator answers streaming requests only in tests that ask")
        price_in, price_out, vision = MODELS[model]
        messages = body.get("messages") or []
        if not messages or messages[-1].get("role") != "user":
            return error(400, "messages must end with a user message")
        prompt, images = _text_of(messages[-1].get("content"))
        if images and not vision:
            return error(404, "No endpoints found that support image input")
        if any(not url.startswith("data:image/") for url in images):
            return error(400, "image_url must be a data URL or https URL")
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
