"""BlobStorage on S3 or MinIO through the `minio` SDK (the client production uses).

Objects live in one bucket, created on first use if missing. Reads are ranged GETs that
stream straight from the HTTP response, and `signed_url` hands out presigned GET URLs so
browsers can fetch videos from the object store without going through our process.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from minio import Minio
from minio.error import S3Error
from urllib3.response import BaseHTTPResponse

from sora2.application.ports import BlobInfo, BlobNotFound

CHUNK_SIZE = 64 * 1024
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound"})


def split_endpoint(endpoint: str, secure: bool | None) -> tuple[str, bool]:
    """Turn `http(s)://host:port` or `host:port` into minio's (host:port, secure).

    An explicit `secure` wins; otherwise the URL scheme decides, and a bare host:port
    means HTTPS (the safe default, and the minio SDK's own).
    """
    endpoint = endpoint.strip()
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "", endpoint
    elif scheme.lower() not in ("http", "https"):
        raise ValueError(f"S3 endpoint scheme must be http or https: {endpoint!r}")
    host = rest.rstrip("/")
    if not host or "/" in host:
        raise ValueError(f"S3 endpoint must be host[:port] with no path: {endpoint!r}")
    if secure is None:
        secure = scheme.lower() != "http"
    return host, secure


class S3BlobStorage:
    """One S3/MinIO bucket; keys are object names."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        secure: bool | None = None,
    ) -> None:
        host, use_tls = split_endpoint(endpoint, secure)
        self.bucket = bucket
        self.region = region
        # Passing the region stops minio from asking the server for the bucket location
        # (and lets presigned URLs be built without any network call).
        self._client = Minio(
            host, access_key=access_key, secret_key=secret_key, secure=use_tls, region=region
        )
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing; done once, lazily, before the first call.

        Public so startup code can call it to fail fast on a bad endpoint or credentials
        (construction itself makes no network calls).
        """
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket, location=self.region)
                except S3Error as exc:
                    # Another process created it between our check and our create.
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
            self._bucket_ready = True

    def ping(self) -> None:
        """Raise unless the endpoint answers and takes our credentials (readiness); a
        missing bucket is fine: it is created on the first write."""
        self._client.bucket_exists(self.bucket)

    # --- writing --------------------------------------------------------------------

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.ensure_bucket()
        self._client.fput_object(self.bucket, key, str(path), content_type=content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.ensure_bucket()
        self._client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    # --- reading --------------------------------------------------------------------

    def size(self, key: str) -> int:
        return self.stat(key).size

    def stat(self, key: str) -> BlobInfo:
        self.ensure_bucket()
        try:
            info = self._client.stat_object(self.bucket, key)
        except S3Error as exc:
            _raise_not_found(exc, key)
            raise
        return BlobInfo(int(info.size or 0), f'"{(info.etag or "").strip(chr(34))}"')

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Send the GET now (so a missing key raises BlobNotFound here, before any
        response is started), then stream lazily; a range past the end yields nothing."""
        if start < 0:
            raise ValueError(f"range start must be >= 0, got {start}")
        if end is not None and end < start:
            raise ValueError(f"range end {end} is before start {start}")
        self.ensure_bucket()
        length = 0 if end is None else end - start + 1  # minio: 0 means "to the end"
        try:
            response = self._client.get_object(self.bucket, key, offset=start, length=length)
        except S3Error as exc:
            _raise_not_found(exc, key)
            if exc.code == "InvalidRange":  # start is at or past the end of the object
                return iter(())
            raise
        return _stream(response)

    # --- the rest -------------------------------------------------------------------

    def delete(self, key: str) -> None:
        self.ensure_bucket()
        try:
            self._client.remove_object(self.bucket, key)  # S3 deletes are idempotent
        except S3Error as exc:
            if exc.code not in _NOT_FOUND_CODES:
                raise

    def signed_url(self, key: str, expires: timedelta) -> str | None:
        """A presigned GET URL on the configured endpoint, valid for `expires`
        (S3 allows 1 second to 7 days). Does not check that the object exists."""
        return self._client.presigned_get_object(self.bucket, key, expires=expires)


def _raise_not_found(exc: S3Error, key: str) -> None:
    if exc.code in _NOT_FOUND_CODES:
        raise BlobNotFound(key) from exc


def _stream(response: BaseHTTPResponse) -> Iterator[bytes]:
    """Yield the body in chunks, then give the connection back to minio's pool."""
    try:
        # decode_content=False: the stored bytes exactly, even if a Content-Encoding is set.
        yield from response.stream(CHUNK_SIZE, decode_content=False)
    finally:
        response.close()
        response.release_conn()
