"""ElevenLabs text to speech, through the official ``elevenlabs`` SDK.

One step is one ``POST /v1/text-to-speech/{voice_id}`` whose response body *is*
the audio: it is streamed chunk by chunk into a temporary file next to the
output, checked (non-empty, complete, really audio of the asked format) and only
then renamed onto ``job.output``. ElevenLabs has no long-running jobs, so the
:class:`~acpbuild.provider.Journal` is unused: there is nothing to resume,
and a request that failed after reaching the service is never sent again
automatically.

Voices may be given by name ("Rachel") or by id. Names are resolved with one
``GET /v1/voices`` (legacy voices included), falling back to the paginated
``GET /v2/voices`` when v1 refuses (it stops working past 500 voices). The list
is cached per provider instance, which serves one run; the lookup is free. A run
asks :meth:`ElevenLabsProvider.lacks` before it spends anything, so a voice name
the account does not have is named then, for every step, from that one list.

``ACPBUILD_ELEVENLABS_URL`` replaces the API root the SDK talks to (the part
before ``/v1/...``, e.g. ``https://api.eu.residency.elevenlabs.io`` or a proxy).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
    Problem,
    Provider,
    ProviderError,
    ProviderTimeout,
    RequestRejected,
    ServiceUnavailable,
    closest,
    did_you_mean,
    redact,
)
from acpbuild.provider.wire import (
    Origins,
    RetryPolicy,
    common_status_error,
    common_transport_error,
    disk_error,
    max_download_bytes,
    sniff,
    too_big,
    with_retries,
)
from acpbuild.providers.elevenlabs.models import (
    CATALOGUE,
    DEFAULT_FORMAT,
    DEFAULT_VOICE,
    ISO_639_1,
    KIND,
    MAX_CHARS,
)

if TYPE_CHECKING:
    from elevenlabs.client import ElevenLabs
    from elevenlabs.core.request_options import RequestOptions
    from elevenlabs.types import GetVoicesV2Response

T = TypeVar("T")

_VOICE_ID = re.compile(r"[A-Za-z0-9]{20}")

_LOOKUP_TIMEOUT_S = 60.0
_V2_PAGE_SIZE = 100
_V2_MAX_PAGES = 50


# ElevenLabs' API hosts (the SDK's environments): with ACPBUILD_ELEVENLABS_URL,
# the only places the key is sent to.
OFFICIAL_HOSTS = ("api.elevenlabs.io", "api.us.elevenlabs.io", "api.*.residency.elevenlabs.io")

_VOICE_SETTINGS = ("stability", "similarity_boost", "style", "use_speaker_boost", "speed")


class ElevenLabsProvider(Provider):
    """Text to speech on ElevenLabs. See the module docstring."""

    name = "elevenlabs"
    version = "1"
    api_version = "1.1"
    key_vars = ("ELEVENLABS_API_KEY",)
    url_var = "ACPBUILD_ELEVENLABS_URL"
    concurrency = 4

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._voices: list[tuple[str, str]] | None = None  # (name, voice_id)
        self._voices_lock = threading.Lock()

    def catalogue(self) -> Mapping[str, Model]:
        return CATALOGUE

    # -- generation -----------------------------------------------------------
    def generate(self, job: Job, journal: Journal) -> Outcome:
        """Speak ``job.params["text"]`` into ``job.output`` (.mp3 or .wav).

        ``journal`` is unused: a text-to-speech call answers with the audio itself.
        """
        params = job.params
        text: str = params["text"]
        output_format = self._output_format(job)
        model_id = job.model.endpoints[KIND]
        policy = RetryPolicy.from_env(self.env)
        with self._client(job.timeout_s) as client:
            voice_id = self._voice_id(client, params.get("voice") or DEFAULT_VOICE, policy)
            request = self._request_body(params, model_id)
            headers, size = with_retries(
                lambda: self._convert(client, voice_id, request, output_format, job),
                policy=policy,
                billable=True,
            )
        usage: dict[str, float] = {"characters": len(text)}
        seconds = _duration_s(job.output, output_format, size)
        if seconds is not None:
            usage["seconds"] = seconds
        meta: dict[str, Any] = {
            "model_id": model_id,
            "voice_id": voice_id,
            "output_format": output_format,
            "bytes": size,
        }
        credits = headers.get("character-cost")
        if credits and credits.isdigit():
            meta["credits"] = int(credits)
        return Outcome(
            request_id=headers.get("request-id") or headers.get("history-item-id"),
            usage=usage,
            meta=meta,
        )

    @classmethod
    def check(
        cls, kind: str, model: Model, params: Mapping[str, Any], suffix: str
    ) -> list[Problem]:
        """The output must be .mp3 or .wav, and ``output_format`` must write that container;
        the text must fit the model's character limit, and v3's ``language_code`` be a
        two-letter code."""
        suffix = suffix.lower()
        if suffix not in DEFAULT_FORMAT:
            return [Problem("output", "ElevenLabs speech is saved as .mp3 or .wav")]
        text, limit = params.get("text"), MAX_CHARS.get(model.endpoints[KIND])
        if isinstance(text, str) and limit is not None and len(text) > limit:
            return [
                Problem(
                    "text",
                    f"{model.name} speaks at most {limit:,} characters in one request and this "
                    f"text has {len(text):,}; split it into several steps",
                )
            ]
        code, spec = params.get("language_code"), model.params.get("language_code")
        # where the catalogue lists no languages (v3), the code's form is all it can check
        free = spec is not None and spec.choices is None
        if free and isinstance(code, str) and not ISO_639_1.fullmatch(code):
            return [
                Problem(
                    "language_code",
                    f"{code!r} is not an ISO 639-1 code; give two lowercase letters, e.g. 'de'",
                )
            ]
        asked = params.get("output_format")
        if isinstance(asked, str) and not asked.startswith(suffix[1:] + "_"):
            return [
                Problem(
                    "output_format",
                    f"{asked!r} does not match the output file's {suffix} suffix: use a "
                    f"{suffix[1:]}_* format or name the output .{asked.split('_')[0]}",
                )
            ]
        return []

    def _output_format(self, job: Job) -> str:
        self.refuse_unfit(job)
        asked = job.params.get("output_format")
        return str(asked) if asked is not None else DEFAULT_FORMAT[job.output.suffix.lower()]

    @staticmethod
    def _request_body(params: Mapping[str, Any], model_id: str) -> dict[str, Any]:
        from elevenlabs.types import VoiceSettings

        body: dict[str, Any] = {"text": params["text"], "model_id": model_id}
        settings = {k: params[k] for k in _VOICE_SETTINGS if params.get(k) is not None}
        if settings:
            body["voice_settings"] = VoiceSettings(**settings)
        for name in ("seed", "language_code"):
            if params.get(name) is not None:
                body[name] = params[name]
        return body

    def _convert(
        self,
        client: ElevenLabs,
        voice_id: str,
        request: dict[str, Any],
        output_format: str,
        job: Job,
    ) -> tuple[dict[str, str], int]:
        """One billable request: stream the audio into a temp file, check it, rename it."""
        import httpx
        from elevenlabs.core.api_error import ApiError

        deadline = time.monotonic() + job.timeout_s
        job.output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=job.output.parent, prefix=f".{job.output.name}.", suffix=".part"
        )
        part = Path(tmp)
        headers: dict[str, str] | None = None
        written = 0
        cap = max_download_bytes("audio", self.env)
        try:
            with os.fdopen(fd, "wb") as f:
                # The client's own timeout (job.timeout_s) bounds each read.
                options: RequestOptions = {"max_retries": 0}
                raw = client.text_to_speech.with_raw_response
                with raw.convert(
                    voice_id, output_format=output_format, request_options=options, **request
                ) as response:
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    for chunk in response.data:
                        written += len(chunk)
                        if written > cap:  # across chunks: a stream with no length stops here too
                            raise too_big(written, cap, provider=self.name, expect="audio", more=True, sent=True)
                        f.write(chunk)
                        if time.monotonic() > deadline:
                            raise ProviderTimeout(
                                f"the audio was still arriving after {job.timeout_s:g} s",
                                provider=self.name,
                            )
            assert headers is not None
            self._check_audio(part, headers, written, output_format)
            os.replace(part, job.output)
        except (ApiError, httpx.HTTPError) as exc:
            raise self._translate(exc, billable=True, streaming=headers is not None) from exc
        except OSError as exc:  # a full disk: the audio was made (and billed) all the same
            raise disk_error(exc, part, provider=self.name, sent=True) from exc
        finally:
            part.unlink(missing_ok=True)
        return headers, written

    def _check_audio(self, part: Path, headers: dict[str, str], written: int, fmt: str) -> None:
        # The service has already produced (and billed) this audio, so these
        # failures carry sent=True and are not blindly retried.
        declared = headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and "content-encoding" not in headers
            and int(declared) != written
        ):
            raise BadResponse(
                f"the audio was truncated: got {written} of {declared} bytes", provider=self.name
            )
        with open(part, "rb") as f:
            head = f.read(12)
        is_wav = head[:4] == b"RIFF" and head[8:12] == b"WAVE"
        if written == 0 or sniff(part) != "audio" or is_wav != fmt.startswith("wav_"):
            kind = headers.get("content-type", "unknown type")
            raise BadResponse(
                f"the answer is not {fmt.split('_')[0].upper()} audio ({written} bytes of {kind})",
                provider=self.name,
            )

    # -- voices ---------------------------------------------------------------
    def lacks(self, kind: str, model: Model, params: Mapping[str, Any]) -> list[Problem]:
        """A voice named in the step that the account does not have (or names twice).

        One voice listing serves the whole run: the plan's check and every step's
        generation read the same list. A voice given by id is not looked up, as
        :meth:`generate` does not look it up either.
        """
        voice = params.get("voice") or DEFAULT_VOICE
        if not isinstance(voice, str) or _VOICE_ID.fullmatch(voice):
            return []
        policy = RetryPolicy.from_env(self.env)
        with self._voices_lock:
            voices = self._voices
        if voices is None:
            with self._client(_LOOKUP_TIMEOUT_S) as client:
                voices = self._voice_list(client, policy)
        try:
            self._match(voice, voices)
        except RequestRejected as exc:
            return [Problem("voice", str(exc).removeprefix(f"{self.name}: "))]
        return []

    def _voice_id(self, client: ElevenLabs, voice: str, policy: RetryPolicy) -> str:
        if _VOICE_ID.fullmatch(voice):
            return voice
        return self._match(voice, self._voice_list(client, policy))

    def _match(self, voice: str, voices: list[tuple[str, str]]) -> str:
        """The id of the voice called ``voice`` among the account's ``voices`` (name, id);
        RequestRejected (nothing sent) when there is none, or more than one."""
        wanted = voice.strip().casefold()
        for name, voice_id in voices:
            if name.casefold() == wanted or voice_id == voice:
                return voice_id
        # Library names often read "Sarah - Mature, Reassuring"; accept the short name.
        short = sorted(
            {vid for name, vid in voices if name.split(" - ")[0].strip().casefold() == wanted}
        )
        if len(short) == 1:
            return short[0]
        names = sorted({name for name, _ in voices if name})
        if short:
            matches = [name for name, vid in voices if vid in short]
            raise RequestRejected(
                f"voice {voice!r} is ambiguous: {', '.join(map(repr, matches))}; give the full name or an id",
                provider=self.name,
                sent=False,
            )
        tip = did_you_mean(voice, names)
        if tip:
            hint = f"{tip} nearest names: {', '.join(map(repr, closest(voice, names, n=5)))}"
        else:
            hint = f"available: {', '.join(map(repr, names[:20]))}" if names else "it has no voices"
        raise RequestRejected(
            f"no voice named {voice!r} in this ElevenLabs account; {hint}",
            provider=self.name,
            sent=False,
        )

    def _voice_list(self, client: ElevenLabs, policy: RetryPolicy) -> list[tuple[str, str]]:
        with self._voices_lock:
            if self._voices is None:
                try:
                    response = self._lookup(
                        lambda opts: client.voices.get_all(show_legacy=True, request_options=opts),
                        policy,
                    )
                    voices = [(v.name or "", v.voice_id) for v in response.voices]
                except RequestRejected:
                    voices = self._voice_pages(client, policy)
                self._voices = voices
            return self._voices

    def _voice_pages(self, client: ElevenLabs, policy: RetryPolicy) -> list[tuple[str, str]]:
        voices: list[tuple[str, str]] = []
        token: str | None = None
        for _ in range(_V2_MAX_PAGES):

            def search(opts: RequestOptions, token: str | None = token) -> GetVoicesV2Response:
                return client.voices.search(
                    page_size=_V2_PAGE_SIZE, next_page_token=token, request_options=opts
                )

            page = self._lookup(search, policy)
            voices += [(v.name or "", v.voice_id) for v in page.voices]
            token = getattr(page, "next_page_token", None)
            if not getattr(page, "has_more", False) or not token:
                break
        return voices

    # -- ping -----------------------------------------------------------------
    def ping(self) -> str:
        """Read the subscription: tier and characters used this period (free)."""
        with self._client(_LOOKUP_TIMEOUT_S) as client:
            sub = self._lookup(
                lambda opts: client.user.subscription.get(request_options=opts),
                RetryPolicy.from_env(self.env),
            )
        used, limit = getattr(sub, "character_count", None), getattr(sub, "character_limit", None)
        usage = (
            f"{used:,} of {limit:,} characters used"
            if used is not None and limit
            else "usage unknown"
        )
        return f"ElevenLabs {getattr(sub, 'tier', '?')} plan: {usage}"

    # -- plumbing -------------------------------------------------------------
    def origins(self) -> Origins:
        """Where the key may go: ``ACPBUILD_ELEVENLABS_URL`` or ElevenLabs' own hosts."""
        return Origins(self.base_url(), OFFICIAL_HOSTS)

    @contextlib.contextmanager
    def _client(self, timeout_s: float) -> Iterator[ElevenLabs]:
        """An SDK client with our key and endpoint, closed afterwards."""
        key = self.api_key()
        if not key:
            raise MissingCredentials(
                "no API key: set ELEVENLABS_API_KEY in the environment or in .env",
                provider=self.name,
                sent=False,
            )
        import httpx
        from elevenlabs.client import ElevenLabs

        # The key is passed explicitly: the SDK's default is read once, at import time.
        # It travels as a custom header (xi-api-key), which httpx keeps on a redirect
        # to another host; the guard refuses any request, redirects included, that
        # would carry it outside ElevenLabs' hosts or ACPBUILD_ELEVENLABS_URL.
        guard = self.origins().guard(provider=self.name, what="redirect")
        with httpx.Client(
            timeout=timeout_s, follow_redirects=True, event_hooks={"request": [guard]}
        ) as http:
            yield ElevenLabs(
                api_key=key, base_url=self.base_url() or None, httpx_client=http, timeout=timeout_s
            )

    def _lookup(self, call: Callable[[Any], T], policy: RetryPolicy) -> T:
        """A free request (voices, subscription): the SDK does not retry, we do."""
        import httpx
        from elevenlabs.core.api_error import ApiError
        from elevenlabs.core.parse_error import ParsingError

        options: RequestOptions = {"max_retries": 0}

        def once() -> T:
            try:
                return call(options)
            except (ApiError, httpx.HTTPError) as exc:
                raise self._translate(exc, billable=False, streaming=False) from exc
            except (ParsingError, ValueError) as exc:
                raise BadResponse(
                    f"could not read the answer: {type(exc).__name__}",
                    provider=self.name,
                    sent=False,
                ) from exc

        return with_retries(once, policy=policy, billable=False)

    def _translate(self, exc: Exception, *, billable: bool, streaming: bool) -> ProviderError:
        """Map one SDK or transport exception onto acpbuild's error tree."""
        import httpx
        from elevenlabs.core.api_error import ApiError

        p = self.name
        if isinstance(exc, ApiError):
            self._scrub(exc)
            return self._translate_status(
                exc.status_code or 0, exc.body, exc.headers or {}, billable
            )
        if streaming and not isinstance(exc, (httpx.TimeoutException, httpx.ConnectError)):
            return BadResponse(
                f"the audio was truncated: the connection broke mid-stream ({type(exc).__name__})",
                provider=p,
            )
        return common_transport_error(
            exc, provider=p, service="ElevenLabs", url_var="ACPBUILD_ELEVENLABS_URL", billable=billable
        )

    def _translate_status(
        self, status: int, body: Any, headers: Mapping[str, str], billable: bool
    ) -> ProviderError:
        p = self.name
        code, message = _detail(body)
        said = redact(
            f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else ""),
            self.env,
        )
        if status == 402 or code in ("quota_exceeded", "payment_required", "insufficient_credits"):
            return PaymentRequired(
                f"out of credits ({said}); top up or upgrade the ElevenLabs plan",
                provider=p,
                status=status,
                sent=False,
            )
        if status == 403 and code == "output_format_not_allowed":
            return RequestRejected(
                f"{said}; pick a lower-quality output_format or upgrade the plan",
                provider=p,
                status=status,
                sent=False,
            )
        common = common_status_error(
            status,
            said,
            provider=p,
            service="ElevenLabs",
            key_var="ELEVENLABS_API_KEY",
            headers=headers,
            billable=billable,
        )
        if common is not None:
            return common
        if status >= 500:
            # ElevenLabs' 500 bodies usually say "You are not charged for this
            # request", but that is not a documented guarantee, so a billable
            # request is not repeated (sent=True).
            return ServiceUnavailable(
                f"ElevenLabs failed ({said}); try again later", provider=p, status=status, sent=True
            )
        if _is_policy_refusal(code, message):
            return RequestRejected(
                f"refused by the ElevenLabs content policy ({said}); change the text",
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
        if key and key in str(exc):
            exc.body = redact(json.dumps(exc.body, default=str), self.env)
            exc.headers = {k: redact(str(v), self.env) for k, v in (exc.headers or {}).items()}


def _detail(body: Any) -> tuple[str | None, str]:
    """ElevenLabs' error ``detail`` as (status code word, message)."""
    if isinstance(body, Mapping):
        detail = body.get("detail", body)
        if isinstance(detail, Mapping):
            code = detail.get("status") or detail.get("code")
            message = detail.get("message") or detail.get("msg") or ""
            return (str(code) if code else None), str(message)
        if isinstance(detail, list):  # FastAPI validation errors
            parts = [
                f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}"
                if isinstance(d, Mapping)
                else str(d)
                for d in detail
            ]
            return None, "; ".join(parts)[:500]
        return None, str(detail)[:500]
    text = body if isinstance(body, str) else ("" if body is None else str(body))
    return None, " ".join(text.split())[:300]


def _is_policy_refusal(code: str | None, message: str) -> bool:
    # ElevenLabs documents no single status for moderation; refusals seen in
    # the wild use "bad_prompt" with a Terms of Service message.
    text = f"{code or ''} {message}".lower()
    return any(
        word in text for word in ("bad_prompt", "moderation", "content policy", "terms of service")
    )


def _duration_s(path: Path, output_format: str, size: int) -> float | None:
    """Seconds of audio: exact for WAV, from the constant bitrate for MP3."""
    parts = output_format.split("_")
    if parts[0] == "mp3" and len(parts) == 3:
        return round(size * 8 / (int(parts[2]) * 1000), 2)
    if parts[0] == "wav":
        import wave

        try:
            with wave.open(str(path), "rb") as w:
                frames, rate, width = (
                    w.getnframes(),
                    w.getframerate(),
                    w.getsampwidth() * w.getnchannels(),
                )
        except (wave.Error, EOFError, OSError):
            return None
        # A streamed WAV may declare a placeholder length; trust the file size then.
        if frames * width > size:
            frames = max(0, size - 44) // max(1, width)
        return round(frames / rate, 2) if rate else None
    return None
