"""Veo video on Vertex AI: one long-running operation per step, resumable.

``text_to_video`` and ``image_to_video`` (Veo 3.0 / 3.1): ``predictLongRunning``
submits the operation (the billable call), its name goes to the journal, and
``fetchPredictOperation`` is polled until it is done; a run that was interrupted
polls the recorded operation instead of submitting again. Vertex returns the
video inline (base64 in the final poll), so it is written to a temporary file,
checked to be a complete MP4 and only then renamed.

acpbuild never sets ``parameters.storageUri``, the one thing that makes Vertex
write the video to Cloud Storage and answer with its ``gs://`` URI alone. Such
an answer (an operation submitted by something else, or a gateway that adds
storageUri) is refused with a message that names storageUri: reading a Cloud
Storage object takes Google Cloud credentials, and acpbuild has an API key.
A gateway that answers with an ``https://`` link instead is downloaded.

Veo always goes through Vertex AI mode (google-genai refuses ``generate_videos``
in Gemini Developer API mode), with the key, project and endpoint described in
:mod:`acpbuild.providers.google.gemini`. These functions are that provider's video
half: they use its client, key and request plumbing, and import the SDK only
when a video is made.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from acpbuild.provider import (
    BadResponse,
    Job,
    Journal,
    Outcome,
    ProviderTimeout,
    RequestRejected,
    redact,
)
from acpbuild.provider.outputs import mp4_problem
from acpbuild.provider.wire import (
    RetryPolicy,
    disk_error,
    download,
    max_download_bytes,
    with_retries,
)
from acpbuild.providers.google.client import GoogleConnection, read_image
from acpbuild.providers.google.errors import operation_error

if TYPE_CHECKING:
    from google.genai import Client, types

# One submit or poll request (the last poll carries the whole video, base64).
_REQUEST_TIMEOUT_S = 300.0
_IMAGE_MIME_TYPES = ("image/png", "image/jpeg")


def generate_video(provider: GoogleConnection, job: Job, journal: Journal) -> Outcome:
    """Submit one Veo operation (or resume the one ``journal`` recorded), wait for it,
    and write its video to ``job.output``."""
    from google.genai import types

    p = job.params
    model_id = job.model.endpoints[job.kind]
    duration = int(p.get("duration_s") or 8)
    audio = bool(p.get("generate_audio", True))
    image = None
    if p.get("image") is not None:
        path = Path(p["image"])
        data, mime = read_image(path, provider.name)
        if mime not in _IMAGE_MIME_TYPES:
            # Vertex takes image/jpeg and image/png only (Veo API reference, mimeType).
            shown = mime.removeprefix("image/").upper()
            raise RequestRejected(
                f"Veo takes a PNG or JPEG first frame; {path.name} is {shown}: "
                "convert it to PNG or JPEG",
                provider=provider.name,
                sent=False,
            )
        image = types.Image(image_bytes=data, mime_type=mime)
    source = types.GenerateVideosSource(prompt=p.get("prompt"), image=image)
    config = types.GenerateVideosConfig(
        number_of_videos=1,
        duration_seconds=duration,
        aspect_ratio=p.get("aspect_ratio"),
        resolution=p.get("resolution"),
        negative_prompt=p.get("negative_prompt"),
        generate_audio=audio,
        seed=p.get("seed"),
    )
    deadline = time.monotonic() + job.timeout_s
    with provider._client(vertex=True, timeout_s=_REQUEST_TIMEOUT_S) as client:
        name = journal.resume_id
        if name is None:
            submitted = provider._call(
                lambda: client.models.generate_videos(model=model_id, source=source, config=config),
                billable=True,
                vertex=True,
            )
            if not submitted.name:
                raise BadResponse(
                    "Veo accepted the request but returned no operation name",
                    provider=provider.name,
                )
            name = submitted.name
            journal.submitted(name)
        operation = _wait(provider, client, name, deadline, job.timeout_s)
        size = _save_video(provider, operation, job.output)
    return Outcome(
        request_id=name,
        usage={"seconds": float(duration)},
        meta={
            "model": model_id,
            "api": "vertex",
            "generate_audio": audio,
            "resolution": p.get("resolution"),
            "bytes": size,
        },
    )


def _wait(
    provider: GoogleConnection, client: Client, name: str, deadline: float, timeout_s: float
) -> types.GenerateVideosOperation:
    """Poll operation ``name`` until it is done or ``deadline`` passes."""
    from google.genai import types

    interval = float(provider.env.get("ACPBUILD_POLL_INTERVAL_S", "2.0"))
    operation = types.GenerateVideosOperation.model_validate({"name": name})
    while True:
        # A poll is free. The last one carries the video itself, so even near
        # the deadline it gets a minute to arrive.
        left = min(_REQUEST_TIMEOUT_S, max(60.0, deadline - time.monotonic()))
        config = types.GetOperationConfig(http_options=types.HttpOptions(timeout=int(left * 1000)))

        def poll(
            op: types.GenerateVideosOperation = operation,
            cfg: types.GetOperationConfig = config,
        ) -> types.GenerateVideosOperation:
            return client.operations.get(op, config=cfg)

        operation = provider._call(poll, billable=False, vertex=True)
        if operation.done:
            return operation
        if time.monotonic() + interval > deadline:
            raise ProviderTimeout(
                f"Veo operation {name} was still running after {timeout_s:g} s; "
                "run the build again to resume waiting for it (it will not be resubmitted)",
                provider=provider.name,
            )
        time.sleep(interval)


def _save_video(
    provider: GoogleConnection, operation: types.GenerateVideosOperation, dest: Path
) -> int:
    name = operation.name or "?"
    if operation.error:
        raise operation_error(name, operation.error, provider=provider.name, env=provider.env)
    result = operation.response or operation.result
    videos = (result.generated_videos if result else None) or []
    if not videos or videos[0].video is None:
        filtered = result.rai_media_filtered_count if result else None
        if filtered:
            reasons = "; ".join(result.rai_media_filtered_reasons or []) if result else ""
            raise RequestRejected(
                f"Veo's output was refused by Google's content policy ({filtered} video(s) "
                f"filtered{': ' + redact(reasons, provider.env) if reasons else ''}); "
                "change the prompt or image",
                provider=provider.name,
            )
        raise BadResponse(
            f"Veo operation {name} finished without a video",
            provider=provider.name,
            job_failed=True,
        )
    video = videos[0].video
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
    except OSError as exc:  # the operation stays resumable: polling it again is free
        raise disk_error(exc, dest, provider=provider.name, sent=False) from exc
    part = Path(tmp)
    try:
        if video.video_bytes:
            try:
                part.write_bytes(video.video_bytes)
            except OSError as exc:
                raise disk_error(exc, part, provider=provider.name, sent=False) from exc
        elif video.uri and video.uri.startswith(("https://", "http://")):
            _download(provider, video.uri, part)
        elif video.uri:
            raise _stored_elsewhere(provider, video.uri, dest)
        else:
            raise BadResponse(
                f"Veo operation {name} returned an empty video",
                provider=provider.name,
                job_failed=True,
            )
        problem = mp4_problem(part)
        if problem:
            # The operation is finished and paid for, but what it holds is broken:
            # polling it again returns the same bytes, so resuming cannot help.
            # (A final poll cut off in transit fails earlier, as a free poll.)
            raise BadResponse(
                f"the video Veo returned is unusable: {problem}",
                provider=provider.name,
                job_failed=True,
            )
        size = part.stat().st_size
        try:
            os.replace(part, dest)
        except OSError as exc:
            raise disk_error(exc, dest, provider=provider.name, sent=False) from exc
    finally:
        part.unlink(missing_ok=True)
    return size


def _stored_elsewhere(provider: GoogleConnection, uri: str, dest: Path) -> BadResponse:
    """The error for a video Veo wrote to storage and answered with only its URI.

    Vertex does that when the request set ``parameters.storageUri``, which
    acpbuild never sets. Reading a ``gs://`` object takes Google Cloud
    credentials (OAuth), which an API key is not, so the video is not fetched.
    The operation is finished, and polling it again gives the same URI: the job
    counts as failed, so the next run submits a new one, without storageUri.
    """
    if uri.startswith("gs://"):
        message = (
            f"Veo wrote the video to Cloud Storage at {uri} and returned only that URI, "
            "because the operation was submitted with parameters.storageUri; acpbuild "
            "authenticates with an API key, which cannot read Cloud Storage objects. "
            f"Copy it yourself (gcloud storage cp {uri} {dest}), or run the build again: "
            "acpbuild submits the step anew without storageUri (billed again) and the "
            "video comes back inline"
        )
    else:
        message = (
            f"Veo answered with the video's location {uri} instead of the video; "
            "acpbuild takes inline bytes or an https:// link only"
        )
    error = BadResponse(message, provider=provider.name, job_failed=True)
    error.retryable = False  # asking again returns the same URI
    return error


def _download(provider: GoogleConnection, uri: str, part: Path) -> None:
    """Fetch a video URI (a gateway may return one instead of bytes) onto ``part``.

    The key goes with it only to the API's own origin (:meth:`GoogleConnection.origins`);
    a file on a storage host, or a redirect to one, is fetched without it.
    """
    with_retries(
        lambda: download(
            uri,
            part,
            provider=provider.name,
            expect="video",
            timeout_s=_REQUEST_TIMEOUT_S,
            headers={"x-goog-api-key": provider._key(vertex=True)},
            origins=provider.origins(vertex=True),
            max_bytes=max_download_bytes("video", provider.env),
        ),
        policy=RetryPolicy.from_env(provider.env),
        billable=False,
    )
