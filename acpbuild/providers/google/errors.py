"""Google's failures, translated into acpbuild's error tree.

This is the one seam for ``google-genai``: every exception the SDK (or the HTTP
library under it) raises during a call, and every failed Veo operation, comes
out of here as a :class:`~acpbuild.errors.ProviderError` that says whether the
request may have been billed (``sent``), whether retrying can help, and what the
user can do. Messages and the SDK exceptions they chain from are redacted, so
the key never reaches a log. The SDK is imported only when there is an
exception to translate.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from typing import Any

from acpbuild.provider import (
    AuthError,
    BadResponse,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
    redact,
)
from acpbuild.provider.wire import common_transport_error, parse_retry_after

# Words in an error message that mark a policy refusal (Veo: "...contains sensitive
# words that violate Google's Responsible AI practices", "...violates Vertex AI's
# usage guidelines").
_POLICY_WORDS = (
    "usage guidelines",
    "responsible ai",
    "content policy",
    "sensitive words",
    "violate",
)
_BILLING_WORDS = ("billing", "prepayment", "credits are depleted", "payment")


def translate(
    exc: Exception, *, provider: str, env: Mapping[str, str], billable: bool, vertex: bool
) -> ProviderError | None:
    """Map one SDK or transport exception onto the error tree (None: a bug, re-raise)."""
    from google.genai import errors
    from pydantic import ValidationError

    p = provider
    if isinstance(exc, errors.APIError):
        _scrub(exc, env)
        return _from_api_error(exc, provider=p, env=env, billable=billable, vertex=vertex)
    name = type(exc).__name__
    if _is_transport(exc, "RemoteProtocolError") or _is_transport(exc, "ReadError"):
        return BadResponse(
            f"the answer was cut off: the connection closed mid-response ({name})",
            provider=p,
            sent=billable,
        )
    if _is_transport(exc, "HTTPError"):
        return common_transport_error(
            exc, provider=p, service="Google", url_var="ACPBUILD_GOOGLE_URL", billable=billable
        )
    if isinstance(exc, (json.JSONDecodeError, ValidationError)):
        return BadResponse(f"could not read Google's answer ({name})", provider=p, sent=billable)
    return None


def operation_error(
    name: str, error: Mapping[str, Any], *, provider: str, env: Mapping[str, str]
) -> ProviderError:
    """Why Veo operation ``name`` failed, from the ``google.rpc.Status`` it finished with."""
    code = error.get("code")
    message = redact(str(error.get("message") or ""), env)[:500]
    said = f"operation {name} failed (code {code}): {message}"
    lowered = message.lower()
    # The operation itself failed: polling it again cannot help, only a new one can.
    if any(word in lowered for word in _POLICY_WORDS):
        return RequestRejected(
            f"refused by Google's content policy: {said}; change the prompt or image",
            provider=provider,
        )
    if code == 8:  # RESOURCE_EXHAUSTED
        return RateLimited(f"{said}; try again later", provider=provider, job_failed=True)
    if code == 4:  # DEADLINE_EXCEEDED
        return ProviderTimeout(said, provider=provider, job_failed=True)
    if code in (13, 14):  # INTERNAL, UNAVAILABLE
        return ServiceUnavailable(f"{said}; try again later", provider=provider, job_failed=True)
    return RequestRejected(said, provider=provider)


def _from_api_error(
    exc: Any, *, provider: str, env: Mapping[str, str], billable: bool, vertex: bool
) -> ProviderError:
    p = provider
    code = int(exc.code or 0)
    status = str(exc.status or "")
    message = str(exc.message or "")
    reasons = _error_reasons(exc.details)
    said = redact(
        f"HTTP {code}" + (f" {status}" if status else "") + (f": {message}" if message else ""),
        env,
    )[:600]
    lowered = message.lower()
    billing = any(w in lowered for w in _BILLING_WORDS) or any("BILLING" in r for r in reasons)
    if code == 429:
        if "prepayment" in lowered or "credits are depleted" in lowered:
            return PaymentRequired(
                f"out of prepaid credits ({said}); top up the Google AI Studio billing account",
                provider=p,
                status=code,
                sent=False,
            )
        if any("PerDay" in r for r in reasons):
            return PaymentRequired(
                f"the daily quota is used up ({said}); wait until it resets or raise the "
                "quota (enable billing / a higher tier)",
                provider=p,
                status=code,
                sent=False,
            )
        return RateLimited(
            f"rate limited ({said}); wait, or run fewer Google steps at once",
            provider=p,
            status=code,
            sent=False,
            retry_after=_retry_after(exc),
        )
    if code == 402 or (code in (400, 403) and billing):
        return PaymentRequired(
            f"billing is required ({said}); enable billing for the project or top up credits",
            provider=p,
            status=code,
            sent=False,
        )
    if (
        code in (401, 403)
        or "API_KEY_INVALID" in reasons
        or "api key not valid" in lowered
        or "api key expired" in lowered
    ):
        hint = (
            "GOOGLE_API_KEY (Vertex AI needs a Google Cloud key with the Vertex AI API enabled)"
            if vertex
            else "GEMINI_API_KEY or GOOGLE_API_KEY"
        )
        return AuthError(
            f"the key was refused ({said}); check {hint}",
            provider=p,
            status=code,
            sent=False,
        )
    if code in (408, 504):
        return ProviderTimeout(f"Google timed out ({said})", provider=p, status=code, sent=billable)
    if code >= 500:
        # Google does not document that a failed generation is free, and a 500
        # or 503 can come after the model ran: a billable call is not repeated.
        return ServiceUnavailable(
            f"Google failed ({said}); try again later", provider=p, status=code, sent=True
        )
    if any(word in lowered for word in _POLICY_WORDS):
        return RequestRejected(
            f"refused by Google's content policy ({said}); change the prompt or image",
            provider=p,
            status=code,
            sent=False,
        )
    return RequestRejected(
        f"the request was rejected ({said})", provider=p, status=code, sent=False
    )


def _scrub(exc: Any, env: Mapping[str, str]) -> None:
    """Keep the key out of the chained SDK exception's text too."""
    exc.message = redact(str(exc.message or ""), env) or exc.message
    try:
        exc.details = json.loads(redact(json.dumps(exc.details, default=str), env))
    except ValueError:
        exc.details = None
    exc.args = tuple(redact(str(a), env) for a in exc.args)


def _is_transport(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is ``httpx.<name>`` or ``httpx2.<name>`` (the SDK uses either)."""
    for module in ("httpx2", "httpx"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def _error_reasons(details: Any) -> list[str]:
    """ErrorInfo reasons and QuotaFailure quota ids from a google.rpc error body."""
    error = details.get("error", details) if isinstance(details, Mapping) else {}
    found: list[str] = []
    for item in (error.get("details") or []) if isinstance(error, Mapping) else []:
        if not isinstance(item, Mapping):
            continue
        if item.get("reason"):
            found.append(str(item["reason"]))
        for violation in item.get("violations") or []:
            if isinstance(violation, Mapping) and violation.get("quotaId"):
                found.append(str(violation["quotaId"]))
    return found


def _retry_after(exc: Any) -> float | None:
    """``Retry-After`` from the response, else the RetryInfo delay in the error body."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    seconds = parse_retry_after(dict(headers.items()) if headers is not None else None)
    if seconds is not None:
        return seconds
    error = exc.details.get("error", exc.details) if isinstance(exc.details, Mapping) else {}
    for item in (error.get("details") or []) if isinstance(error, Mapping) else []:
        delay = item.get("retryDelay") if isinstance(item, Mapping) else None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(delay or ""))
        if match:
            return float(match.group(1))
    return None
