"""BlobStorage on the local filesystem: the embedded default (objects under UPLOAD_DIR).

Keys are relative, slash-separated paths (`videos/<uuid>.mp4`). A key is checked before
it touches the filesystem so that no key can name a file outside the root. Writes go to
a temporary file in the destination folder and are renamed into place, so readers (and
a restart after a crash) only ever see complete objects under their final name.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from sora2.application.ports import BlobInfo, BlobNotFound

CHUNK_SIZE = 64 * 1024
# Temporary files start with this so they are recognisable (and ignorable) on disk.
TEMP_PREFIX = ".tmp-"
MAX_KEY_BYTES = 1024  # as S3
MAX_SEGMENT_BYTES = 255  # a file name on Linux filesystems
TEMP_NAME_EXTRA = len(TEMP_PREFIX) + 17  # the temp file is `.tmp-<16 hex>-<name>`


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise ValueError.

    Refused: empty keys, absolute paths, backslashes (a separator on Windows), NUL bytes,
    and empty, `.` or `..` segments -- anything that could resolve outside the root or
    name the same object two ways -- and names longer than a filesystem (or S3) takes.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("blob key must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"blob key is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"blob key contains a forbidden character: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"blob key must be relative: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"blob key has an empty, '.' or '..' segment: {key!r}")
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES - TEMP_NAME_EXTRA:
            raise ValueError(f"blob key has a segment longer than a file name can be: {key!r}")
        if segment.startswith(TEMP_PREFIX):
            raise ValueError(f"blob key segment may not start with {TEMP_PREFIX!r}: {key!r}")
    return key


def check_range(start: int, end: int | None) -> None:
    """Refuse byte ranges that make no sense (the HTTP layer should have caught them)."""
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"range end {end} is before start {start}")


class LocalBlobStorage:
    """Objects as files under `root`; `signed_url` is None because we serve the bytes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def ping(self) -> None:
        """Raise unless the folder is there and writable (readiness)."""
        if not self.root.is_dir():
            raise OSError(f"{self.root} is not a folder")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root} is not writable")

    # --- writing --------------------------------------------------------------------

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        # content_type is not stored: the HTTP layer derives it from the key's extension.
        with open(path, "rb") as source:
            self._write(key, source)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._write(key, None, data)

    def _write(self, key: str, source: BinaryIO | None, data: bytes = b"") -> None:
        """Copy into a temp file beside the target, fsync, then atomically rename."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{target.name}")
        # O_EXCL: never clobber another writer's temp file; 0o666 honours the umask
        # like a plain open() would, so served files get the usual permissions.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                if source is None:
                    out.write(data)
                else:
                    while chunk := source.read(CHUNK_SIZE * 16):
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    # --- reading --------------------------------------------------------------------

    def size(self, key: str) -> int:
        return self.stat(key).size

    def stat(self, key: str) -> BlobInfo:
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        if not stat.S_ISREG(info.st_mode):
            raise BlobNotFound(key)
        # as nginx does: modification time and size; a rewrite renames a new file into place
        return BlobInfo(info.st_size, f'"{info.st_mtime_ns:x}-{info.st_size:x}"')

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Open now (so a missing key raises BlobNotFound here, before any response
        is started), then stream lazily; a range past the end yields nothing."""
        check_range(start, end)
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None
        return _stream(handle, start, end)

    # --- the rest -------------------------------------------------------------------

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass

    def signed_url(self, key: str, expires: timedelta) -> str | None:
        return None

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # Defence in depth: a symlink inside the root must not lead outside it.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"blob key resolves outside the storage root: {key!r}")
        return path


def _stream(handle: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    """Yield up to CHUNK_SIZE bytes at a time from `start` to `end` inclusive."""
    with handle:
        handle.seek(start)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; best effort (not possible on every OS)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
