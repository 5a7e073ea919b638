"""The S3 blob store: blobs shared through a bucket, with the local store in front as a cache.

``s3://bucket/prefix`` names the place, and blob ``abcdef…`` is the object
``prefix/ab/cdef…``. Objects are immutable: a put is conditional
(``If-None-Match: *``), so an object already there is never rewritten, unless
its size shows it damaged (a repair). A blob read from the bucket is downloaded
into a staging file and enters the local cache only once its bytes hash to its
name, so neither a reader nor an output ever sees a partial or corrupt object.

A HEAD shows an object's size, not its bytes: damage that keeps the size is
found by the reader that downloads it, and repaired by that process's next put
of the blob. An object is written by one ``PutObject``, so a blob is at most 5 GB.

AWS and S3-compatible servers (MinIO, R2, moto) work alike; ``AWS_ENDPOINT_URL_S3``
or ``AWS_ENDPOINT_URL`` names the latter. botocore's exceptions are translated
here, and no credential reaches a message.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from acpbuild.config.secrets import masked_url, redact
from acpbuild.errors import StoreError, StoreUnreachable
from acpbuild.keys import file_digest
from acpbuild.store.blobs import BlobStore
from acpbuild.store.local import LocalBlobStore

_URL = re.compile(r"s3://(?P<bucket>[A-Za-z0-9][A-Za-z0-9._-]*)(?:/(?P<prefix>[^?#]*))?")
_CHUNK = 1 << 20
# a conditional put lost to another writer: the object exists (412), or is being written (409)
_TAKEN = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


class S3BlobStore(BlobStore):
    """Blobs in ``s3://bucket/prefix``; ``local`` caches them and holds the staging files.

    ``env`` gives the credentials, region and endpoint (the ``AWS_*`` variables the
    AWS CLI reads). Opening checks the bucket: one that cannot be used as configured
    is a :class:`~acpbuild.errors.StoreUnreachable`.
    """

    def __init__(self, url: str, *, local: LocalBlobStore, env: Mapping[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.url = url
        self.local = local
        self._env = env
        found = _URL.fullmatch(url)
        if found is None:
            raise StoreUnreachable(
                self._redact(f"cannot use the remote store {url}: it is not an s3://bucket/prefix URL")
            )
        self.bucket = found["bucket"]
        self.prefix = (found["prefix"] or "").strip("/")
        self._lock = threading.Lock()
        self._known: set[str] = set()  # digests the bucket was seen to hold
        self._corrupt: set[str] = set()  # digests whose object failed its check: not used again
        self.endpoint = ""
        try:
            #: the boto3 client, thread-safe: every thread shares it
            session = self._session()
            self.client = self._client(session, connect_timeout=10, read_timeout=60, max_attempts=5)
            self.endpoint = masked_url(self.client.meta.endpoint_url)
            # opening fails fast: a few seconds, not the patient retries of a transfer
            check = self._client(session, connect_timeout=3, read_timeout=10, max_attempts=2)
            check.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"cannot use the remote store {url}", exc, StoreUnreachable) from exc

    def _session(self) -> Any:
        """A boto3 session with the credentials and region of ``env``."""
        import boto3

        env = self._env
        return boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
            profile_name=env.get("AWS_PROFILE") or None,
            region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )

    def _client(self, session: Any, *, connect_timeout: float, read_timeout: float, max_attempts: int) -> Any:
        """An S3 client of ``session`` for the endpoint of ``env``, if it names one."""
        from botocore.config import Config

        env = self._env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            # S3-compatible servers (MinIO, a test server on 127.0.0.1) want the bucket in the path
            s3={"addressing_style": "path"} if endpoint else None,
        )
        return session.client("s3", endpoint_url=endpoint, config=config)

    # -- names and messages ----------------------------------------------------------------

    def key(self, digest: str) -> str:
        """The object name of blob ``digest``: ``prefix/ab/cdef…``."""
        name = f"{digest[:2]}/{digest[2:]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _redact(self, text: str) -> str:
        return redact(text, self._env)

    def _fail(self, what: str, exc: Exception, kind: type[StoreError] = StoreError) -> StoreError:
        """The error to raise when ``what`` failed with botocore's ``exc``; no credential in it."""
        return kind(self._redact(f"{what}: {self._reason(exc)}"))

    def _reason(self, exc: Exception) -> str:
        """What a botocore exception means, in words a user can act on."""
        from botocore.exceptions import (
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ProfileNotFound,
        )
        from botocore.exceptions import ConnectionError as NoConnection

        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket" or (code in _MISSING and exc.operation_name == "HeadBucket"):
                return f"the bucket '{self.bucket}' does not exist"
            if code in _DENIED:
                return "access denied (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            if code in ("ExpiredToken", "TokenRefreshRequired"):
                return "the session token has expired (renew AWS_SESSION_TOKEN)"
            if code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed"):
                return f"the bucket '{self.bucket}' is in another region (set AWS_REGION)"
            message = exc.response.get("Error", {}).get("Message") or ""
            return f"{code}: {message}" if message else code
        if isinstance(exc, (NoConnection, HTTPClientError)):  # refused, timed out, cut off
            return f"no answer from {self.endpoint or 'the endpoint'} ({exc})"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        if isinstance(exc, ProfileNotFound):
            return f"the profile '{self._env.get('AWS_PROFILE')}' is not configured (check AWS_PROFILE)"
        return str(exc) or type(exc).__name__

    # -- the interface ---------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        if self.local.has(digest):
            return True
        with self._lock:
            if digest in self._corrupt:
                return False
            if digest in self._known:
                return True
        if self._head(digest) is None:
            return False
        with self._lock:
            self._known.add(digest)
        return True

    def _head(self, digest: str) -> int | None:
        """The size of blob ``digest``'s object, or None when the bucket has none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._fail(f"cannot ask {self.url} for blob {digest}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"cannot ask {self.url} for blob {digest}", exc) from exc
        return int(head["ContentLength"])

    def put(self, src: Path) -> str:
        """Upload ``src``, then move it into the local cache; return once the bucket holds it.

        The upload comes first: when it fails, ``src`` is still there for the caller
        to keep (a paid result is never lost to an unreachable bucket).
        """
        digest = file_digest(src)
        with self._lock:
            damaged = digest in self._corrupt
        if damaged or not self._upload_once(digest, src):
            self._upload(digest, src, conditional=False)  # a repair
        self.local.put(src, digest=digest)
        with self._lock:
            self._corrupt.discard(digest)
            self._known.add(digest)
        return digest

    def _upload_once(self, digest: str, blob: Path) -> bool:
        """Upload ``blob`` unless the bucket holds it already; False when the object there is damaged."""
        for _ in range(3):
            if self._upload(digest, blob, conditional=True):
                return True
            held = self._head(digest)
            if held is not None:
                # bytes cannot be checked without downloading them; a wrong size shows damage
                return held == blob.stat().st_size
            # a 409: another writer was mid-upload, and its upload did not land; ours then
        return False

    def _upload(self, digest: str, blob: Path, *, conditional: bool) -> bool:
        """Upload ``blob``; False when the conditional put found the object already there."""
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"cannot upload blob {digest} to {self.url}"
        extra = {"IfNoneMatch": "*"} if conditional else {}
        try:
            with open(blob, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=body, **extra)
        except ClientError as exc:
            if conditional and _code(exc) in _TAKEN:
                return False
            raise self._fail(what, exc) from exc
        except BotoCoreError as exc:
            raise self._fail(what, exc) from exc
        except OSError as exc:
            raise StoreError(f"{what}: cannot read {blob}: {exc.strerror}") from exc
        return True

    def get(self, digest: str) -> Path:
        """The local cache's blob, else the bucket's, checked in a staging file before it is cached."""
        if self.local.has(digest):
            try:
                return self.local.get(digest)
            except StoreError:
                pass  # corrupt: the local store set it aside, so fetch it again
        with self._lock:
            if digest in self._corrupt:
                raise StoreError(
                    f"blob {digest} is missing from the store at {self.local.root}, "
                    "and the remote's object for it is corrupt"
                )
        actual = ""
        for _ in range(2):  # once more: it may have been repaired meanwhile, or damaged on the way
            staged = self.local.staging(".download")
            try:
                if not self._download(digest, staged):
                    with self._lock:
                        self._known.discard(digest)
                    raise StoreError(
                        self._redact(
                            f"blob {digest} is missing from the store at {self.local.root} and from {self.url}"
                        )
                    )
                actual = file_digest(staged)
                if actual == digest:
                    self.local.put(staged, digest=digest)
                    with self._lock:
                        self._known.add(digest)
                    return self.local.path(digest)
            finally:
                staged.unlink(missing_ok=True)
        with self._lock:
            self._known.discard(digest)
            self._corrupt.add(digest)
        raise StoreError(
            self._redact(
                f"the remote's object for {digest} is corrupt (its bytes hash to {actual}, twice); "
                "it was not used, and the next put of the blob replaces it"
            )
        )

    def _download(self, digest: str, dest: Path) -> bool:
        """Write the object of blob ``digest`` to ``dest``; False when the bucket has none."""
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"cannot download blob {digest} from {self.url}"
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))
            stream = answer["Body"]
            try:
                with open(dest, "wb") as out:
                    out.writelines(stream.iter_chunks(_CHUNK))
            finally:
                stream.close()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise self._fail(what, exc) from exc
        except BotoCoreError as exc:
            raise self._fail(what, exc) from exc
        except OSError as exc:
            raise StoreError(f"{what}: cannot write {dest}: {exc.strerror}") from exc
        return True

    def fetch(self, digest: str) -> Path:
        return self.local.path(digest) if self.local.has(digest) else self.get(digest)

    def materialise(self, digest: str, dest: Path, *, inside: Path | None = None) -> None:
        if not self.local.has(digest):
            self.get(digest)  # fetched into the local cache, checked on the way in
        try:
            self.local.materialise(digest, dest, inside=inside)  # checks the cached bytes once
        except StoreError:
            if self.local.has(digest):
                raise  # the blob is intact: writing the output failed
            self.get(digest)  # the cached blob was corrupt and is set aside: fetch it again
            self.local.materialise(digest, dest, inside=inside)

    def staging(self, suffix: str) -> Path:
        return self.local.staging(suffix)

    def sweep(self) -> int:
        return self.local.sweep()

    def keep(self, staged: Path, key: str) -> Path:
        return self.local.keep(staged, key)

    def kept(self, key: str) -> Path | None:
        return self.local.kept(key)

    def path(self, digest: str) -> Path:
        return self.local.path(digest)

    def size(self) -> int:
        """The size of the local cache: what this machine holds, not the bucket's total."""
        return self.local.size()

    def describe(self) -> str:
        """Where the bucket is, once a small probe object was written, read back and deleted."""
        from botocore.exceptions import BotoCoreError, ClientError

        probe = f"{self.prefix}/.acpbuild-probe/{uuid.uuid4().hex}".lstrip("/")
        data = b"acpbuild probe\n"
        step = "write"
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=data)
            step = "read"
            back = self.client.get_object(Bucket=self.bucket, Key=probe)["Body"].read()
            step = "delete"
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"cannot use the remote store {self.url}: cannot {step} a probe object", exc) from exc
        if back != data:
            raise StoreError(self._redact(f"the remote store {self.url} gave back other bytes than were written"))
        where = f"S3 bucket '{self.bucket}'" + (f" prefix '{self.prefix}'" if self.prefix else "")
        return self._redact(f"{where} at {self.endpoint} (read, write and delete ok)")


def _code(exc: Any) -> str:
    """A botocore ClientError's error code ('NoSuchKey'; for a HEAD, which has no body, the status)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
