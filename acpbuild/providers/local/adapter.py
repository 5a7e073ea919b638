"""The built-in provider: free, offline, and producing real media.

It is the embedded default a new user runs without API keys, and the stand-in
``--draft`` swaps paid steps for. Each kind is one function in a submodule
(``text``, ``image``, ``speech``, ``video``, ``audio``, ``captions``); those
import Pillow, ctypes and the ffmpeg helpers, so they are imported only when a
job of their kind runs.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from acpbuild.provider import Job, Journal, Model, Outcome, Provider, ProviderError, RequestRejected
from acpbuild.providers.local.models import CATALOGUE

__all__ = ["LocalProvider"]

# kind -> (model key, "submodule:function")
_HANDLERS: dict[str, tuple[str, str]] = {
    "text": ("template", "text:generate_template"),
    "image_understanding": ("facts", "text:generate_facts"),
    "text_to_image": ("pillow", "image:generate_text_to_image"),
    "image_to_image": ("pillow", "image:generate_image_to_image"),
    "text_to_speech": ("espeak", "speech:generate_speech"),
    "image_to_video": ("kenburns", "video:generate_image_to_video"),
    "text_to_video": ("titlecard", "video:generate_text_to_video"),
    "mux": ("ffmpeg", "video:generate_mux"),
    "thumbnail": ("ffmpeg", "video:generate_thumbnail"),
    "transcode": ("ffmpeg", "video:generate_transcode"),
    "concat": ("ffmpeg", "video:generate_concat"),
    "mix_audio": ("ffmpeg", "audio:generate_mix"),
    "subtitles": ("captions", "captions:generate_subtitles"),
}


class LocalProvider(Provider):
    """Template text, Pillow images, eSpeak NG speech and ffmpeg video, all on this machine."""

    name = "local"
    version = "1"
    api_version = "1.0"
    paid = False
    # ffmpeg, Pillow and eSpeak work this machine's cores
    concurrency = os.cpu_count() or 2
    # template text and image facts are pure Python: threads would only take turns
    in_process = frozenset({"text", "image_understanding"})

    def catalogue(self) -> Mapping[str, Model]:
        return CATALOGUE

    def generate(self, job: Job, journal: Journal) -> Outcome:
        # Local work is synchronous and has no request id, so the journal is unused.
        handler, params = self._prepare(job)
        job.output.parent.mkdir(parents=True, exist_ok=True)
        try:
            return handler(job, params)
        except BaseException:
            # Never leave a half-written file where a result is expected.
            job.output.unlink(missing_ok=True)
            raise

    def _prepare(self, job: Job) -> tuple[Callable[[Job, dict[str, Any]], Outcome], dict[str, Any]]:
        """The function for ``job.kind`` and the job's parameters with defaults filled in."""
        entry = _HANDLERS.get(job.kind)
        if entry is None:
            raise RequestRejected(
                f"the local provider does not do {job.kind!r}; it does "
                f"{', '.join(sorted(_HANDLERS))}",
                provider=self.name,
            )
        model_key, target = entry
        # Defaults come from our own catalogue, so a job built for another
        # provider's model (a --draft swap) still gets complete parameters.
        declared = CATALOGUE[model_key].params_for(job.kind)
        params = {n: p.default for n, p in declared.items() if p.default is not None}
        params.update({k: v for k, v in job.params.items() if v is not None})
        for pname, param in declared.items():
            if pname not in params:
                if param.required:
                    raise RequestRejected(
                        f"{job.kind} needs the parameter {pname!r} ({param.help})",
                        provider=self.name,
                    )
                continue
            problem = param.check(params[pname])
            if problem:
                raise RequestRejected(f"parameter {pname!r}: {problem}", provider=self.name)
        module_name, _, func_name = target.partition(":")
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
        except ImportError as exc:
            raise ProviderError(
                f"cannot load the {job.kind} support: {exc}", provider=self.name
            ) from exc
        handler: Callable[[Job, dict[str, Any]], Outcome] = getattr(module, func_name)
        return handler, params
