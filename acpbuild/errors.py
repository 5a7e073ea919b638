"""acpbuild's exception tree.

Every error acpbuild raises on purpose is one of these; third-party exceptions are
translated at one seam per dependency (each provider module, the store, the ledger)
and chained with ``from``.

    AcpbuildError                 base of everything below
    ├── RecipeError               the recipe (or a command line naming it) is wrong; exit 2
    ├── ProviderError             a provider call did not produce a usable result
    │   ├── MissingCredentials    no API key configured for a paid provider
    │   ├── AuthError             the provider refused the key (401/403)
    │   ├── PaymentRequired       out of credits or quota (402, quota exhausted)
    │   ├── RateLimited           429 after our retries ran out
    │   ├── ServiceUnavailable    5xx or no connection, after our retries ran out
    │   ├── ProviderTimeout       the call or the polling passed its time limit
    │   ├── RequestRejected       the provider refused the request itself (4xx, content policy)
    │   └── BadResponse           the answer was malformed, truncated or failed its checks
    ├── NotReady                  a run needs what is missing here (a key, a voice); found before paying; exit 2
    ├── BudgetExceeded            a paid call would cross the run's budget; exit 3
    ├── SpendNotConfirmed         a run would spend but nobody confirmed it; exit 3
    └── StoreError                the store or ledger cannot be read or written, or a blob is corrupt
        └── StoreUnreachable      the shared ledger or remote store, as configured, cannot be opened; exit 2
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

__all__ = [
    "AcpbuildError",
    "AuthError",
    "BadResponse",
    "BudgetExceeded",
    "MissingCredentials",
    "NotReady",
    "PaymentRequired",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RecipeError",
    "RequestRejected",
    "ServiceUnavailable",
    "SpendNotConfirmed",
    "StoreError",
    "StoreUnreachable",
]


class AcpbuildError(Exception):
    """Base class of every error acpbuild raises on purpose.

    A step that fails after paying says so: ``paid`` is what its provider billed
    (a result the store then refused), ``possibly_billed`` what a request whose
    answer was lost may have cost, at its estimate.
    """

    exit_code = 1
    paid = 0.0
    possibly_billed = 0.0


class RecipeError(AcpbuildError):
    """The recipe is invalid. Raised before any work starts.

    ``file``, ``line`` and ``table`` say where; ``tip`` what to do.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        table: str | None = None,
        tip: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.table = table
        self.tip = tip
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.table:
            where = f"{where} [{self.table}]" if where else f"[{self.table}]"
        text = f"{where}: {self.message}" if where else self.message
        if self.tip:
            text += f"\n  TIP: {self.tip}"
        return text


class ProviderError(AcpbuildError):
    """A provider call failed. ``provider`` names the service.

    ``retryable`` says whether trying again can help at all; ``sent`` whether the
    request may have reached the provider (and so may have been billed): a
    billable call is only retried when ``sent`` is False. ``retry_after`` is the
    provider's own ``Retry-After`` in seconds, when it gave one.

    ``job_failed`` matters once a long job has been submitted: True when the
    provider's job itself is over and failed (it errored, its content was
    refused, the request was rejected), so only a new submission can help;
    False when a free step around it failed (a status poll, the result fetch,
    the download), so the run that follows resumes the same job instead of
    paying for another. ``note`` is a line the runner adds (what happens next).
    """

    retryable = False
    job_failed = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        sent: bool = True,
        retry_after: float | None = None,
        job_failed: bool | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.sent = sent
        self.retry_after = retry_after
        if job_failed is not None:
            self.job_failed = job_failed
        self.note: str | None = None
        prefix = f"{provider}: " if provider else ""
        super().__init__(prefix + message)

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; {self.note}" if self.note else text


class MissingCredentials(ProviderError):
    """No API key is configured for a paid provider."""


class AuthError(ProviderError):
    """The provider refused the key (401/403)."""


class PaymentRequired(ProviderError):
    """The account is out of credits or quota."""


class RateLimited(ProviderError):
    """The provider kept answering 429 after our retries ran out."""

    retryable = True


class ServiceUnavailable(ProviderError):
    """5xx answers or failed connections that outlasted our retries."""

    retryable = True


class ProviderTimeout(ProviderError):
    """A call or the polling of a long job passed its time limit."""

    retryable = True


class RequestRejected(ProviderError):
    """The provider refused the request itself: bad parameters or a content policy."""

    job_failed = True


class BadResponse(ProviderError):
    """The provider's answer was malformed, truncated, or failed our checks."""

    retryable = True


class NotReady(AcpbuildError):
    """What a run needs is missing here: an API key that is not set, a voice the account
    lacks. Raised after planning and before anything is spent (or confirmed), naming every
    missing thing at once with the steps that need it; ``missing`` holds them as
    (what is missing, the steps that need it) pairs."""

    exit_code = 2

    def __init__(self, message: str, *, missing: list[tuple[str, tuple[str, ...]]] | None = None) -> None:
        self.missing = missing or []
        super().__init__(message)


class BudgetExceeded(AcpbuildError):
    """A paid call would cross the run's budget, so it was not made. ``usd``: what it would have cost."""

    exit_code = 3

    def __init__(self, message: str, *, usd: float = 0.0) -> None:
        self.usd = usd
        super().__init__(message)


class SpendNotConfirmed(AcpbuildError):
    """The run would spend money and nobody confirmed it."""

    exit_code = 3


class StoreError(AcpbuildError):
    """The store or ledger cannot be used, or a blob failed its digest check."""


class StoreUnreachable(StoreError):
    """The shared ledger or the remote store cannot be opened as configured: a wrong
    password, a missing bucket, a server that does not answer. Raised before anything is paid."""

    exit_code = 2


def closest(word: str, options: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` spellings among ``options`` close to ``word``, the closest first."""
    return difflib.get_close_matches(word, list(options), n=n, cutoff=0.5)


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The closest spelling of ``word`` among ``options``, for "did you mean" tips."""
    found = closest(word, options)
    return found[0] if found else None


def did_you_mean(
    word: str,
    options: Iterable[str],
    *,
    show: Callable[[str], str] = repr,
    find: Callable[[str, list[str]], str | None] = nearest,
) -> str | None:
    """A tip naming the closest spelling of ``word`` among ``options`` (None when nothing is close).

    ``show`` writes the name as the message around it quotes things (``'x'`` by
    default, ``'${x}'`` for a variable); ``find`` picks it when the closest spelling
    is not the best guess.
    """
    near = find(word, list(options))
    return f"did you mean {show(near)}?" if near else None
