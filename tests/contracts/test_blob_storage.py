"""The BlobStorage contract, run against every adapter.

`BlobStorageContract` holds the behaviour the application relies on; each adapter gets a
`Test...` subclass that only says how to build one. The S3 adapter is exercised over real
HTTP against moto's S3 server, each test in a bucket of its own.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sora2.adapters.storage.local import LocalBlobStorage
from sora2.adapters.storage.s3 import S3BlobStorage, split_endpoint
from sora2.application.ports import BlobNotFound, BlobStorage
from tests.support.s3_server import ACCESS_KEY, REGION, SECRET_KEY, unique_bucket_name

MAX_CHUNK = 64 * 1024


def video_key() -> str:
    return f"videos/{uuid.uuid4()}.mp4"


def read_all(storage: BlobStorage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(storage.read(key, start, end))


@pytest.fixture(scope="module")
def big_data() -> bytes:
    # ~1 MB, not a multiple of the chunk size, random so misplaced bytes show.
    return os.urandom(1_000_003)


class BlobStorageContract:
    """Behaviour every BlobStorage must have. Not collected itself (no `Test` prefix)."""

    # True if signed_url hands out a fetchable URL, False if it must return None.
    signs_urls: bool

    def make_storage(self, request: pytest.FixtureRequest) -> BlobStorage:
        """Build a fresh, empty storage; use request.getfixturevalue for fixtures."""
        raise NotImplementedError

    @pytest.fixture
    def storage(self, request: pytest.FixtureRequest) -> BlobStorage:
        return self.make_storage(request)

    @pytest.fixture
    def big_key(self, storage: BlobStorage, big_data: bytes, tmp_path: Path) -> str:
        source = tmp_path / "source.mp4"
        source.write_bytes(big_data)
        key = video_key()
        storage.put_file(key, source, "video/mp4")
        return key

    # --- round trips ----------------------------------------------------------------

    def test_put_bytes_then_size_and_read(self, storage: BlobStorage) -> None:
        key = f"avatars/{uuid.uuid4()}.png"
        data = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)

        storage.put_bytes(key, data, "image/png")

        assert storage.size(key) == len(data)
        assert read_all(storage, key) == data

    def test_put_file_round_trip(
        self, storage: BlobStorage, big_key: str, big_data: bytes, tmp_path: Path
    ) -> None:
        assert storage.size(big_key) == len(big_data)
        assert read_all(storage, big_key) == big_data
        assert (tmp_path / "source.mp4").read_bytes() == big_data, "source must be untouched"

    def test_read_streams_in_bounded_chunks(
        self, storage: BlobStorage, big_key: str, big_data: bytes
    ) -> None:
        chunks = list(storage.read(big_key))

        assert len(chunks) > 1
        assert all(isinstance(c, bytes) and 0 < len(c) <= MAX_CHUNK for c in chunks)
        assert b"".join(chunks) == big_data

    def test_empty_object(self, storage: BlobStorage) -> None:
        key = video_key()
        storage.put_bytes(key, b"", "video/mp4")

        assert storage.size(key) == 0
        assert read_all(storage, key) == b""

    # --- byte ranges ----------------------------------------------------------------

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            pytest.param(0, None, id="whole"),
            pytest.param(12345, None, id="start-only"),
            pytest.param(100, 70_000, id="start-and-end-across-chunks"),
            pytest.param(0, 0, id="first-byte"),
            pytest.param(777_777, 777_777, id="single-byte"),
            pytest.param(-1, None, id="last-byte"),
            pytest.param(-1, -1, id="last-byte-explicit-end"),
            pytest.param(-10, 10**9, id="end-past-object-is-clamped"),
        ],
    )
    def test_byte_range_equals_slice(
        self, storage: BlobStorage, big_key: str, big_data: bytes, start: int, end: int | None
    ) -> None:
        size = len(big_data)
        start = start % size  # negative ids above count from the end
        if end is not None and end < 0:
            end = end % size
        expected = big_data[start:] if end is None else big_data[start : end + 1]

        assert read_all(storage, big_key, start, end) == expected

    def test_range_starting_past_the_end_is_empty(self, storage: BlobStorage) -> None:
        key = video_key()
        storage.put_bytes(key, b"0123456789", "video/mp4")

        assert read_all(storage, key, 10) == b""
        assert read_all(storage, key, 50, 60) == b""

    @pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
    def test_nonsense_range_is_refused(
        self, storage: BlobStorage, start: int, end: int | None
    ) -> None:
        key = video_key()
        storage.put_bytes(key, b"0123456789", "video/mp4")

        with pytest.raises(ValueError):
            read_all(storage, key, start, end)

    # --- missing objects and deletion -----------------------------------------------

    def test_missing_key(self, storage: BlobStorage) -> None:
        key = video_key()

        with pytest.raises(BlobNotFound):
            storage.size(key)
        with pytest.raises(BlobNotFound):
            read_all(storage, key)

    def test_missing_key_raises_before_iteration(self, storage: BlobStorage) -> None:
        # The HTTP layer relies on this to answer 404 before it starts a streamed 200.
        with pytest.raises(BlobNotFound):
            storage.read(video_key())

    def test_delete_then_missing(self, storage: BlobStorage) -> None:
        key, other = video_key(), video_key()
        storage.put_bytes(key, b"doomed", "video/mp4")
        storage.put_bytes(other, b"survivor", "video/mp4")

        storage.delete(key)

        with pytest.raises(BlobNotFound):
            storage.size(key)
        with pytest.raises(BlobNotFound):
            read_all(storage, key)
        assert read_all(storage, other) == b"survivor"

    def test_delete_missing_key_is_fine(self, storage: BlobStorage) -> None:
        key = video_key()
        storage.delete(key)
        storage.put_bytes(key, b"x", "video/mp4")
        storage.delete(key)
        storage.delete(key)

    # --- overwriting ----------------------------------------------------------------

    def test_overwrite_replaces(self, storage: BlobStorage, tmp_path: Path) -> None:
        key = video_key()
        storage.put_bytes(key, b"a much longer first version", "video/mp4")
        storage.put_bytes(key, b"short", "video/mp4")

        assert storage.size(key) == 5
        assert read_all(storage, key) == b"short"

        replacement = tmp_path / "replacement.mp4"
        replacement.write_bytes(b"from a file")
        storage.put_file(key, replacement, "video/mp4")

        assert read_all(storage, key) == b"from a file"

    def test_the_entity_tag_names_the_bytes(self, storage: BlobStorage) -> None:
        key, other = video_key(), video_key()
        storage.put_bytes(key, b"first version", "video/mp4")
        storage.put_bytes(other, b"another object", "video/mp4")
        first = storage.stat(key)

        assert first.size == len(b"first version")
        assert first.etag.startswith('"') and first.etag.endswith('"') and len(first.etag) > 2
        assert storage.stat(key) == first  # asking again changes nothing
        assert storage.stat(other).etag != first.etag

        storage.put_bytes(key, b"second version", "video/mp4")  # same size, other bytes

        assert storage.stat(key).etag != first.etag
        with pytest.raises(BlobNotFound):
            storage.stat(video_key())

    # --- signed URLs ----------------------------------------------------------------

    def test_signed_url(self, storage: BlobStorage) -> None:
        key = video_key()
        data = os.urandom(200_000)
        storage.put_bytes(key, data, "video/mp4")

        url = storage.signed_url(key, timedelta(minutes=5))

        if not self.signs_urls:
            assert url is None
            return
        assert url is not None
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == ["300"]
        # No credentials, no proxies from the environment: just the URL, like a browser.
        with httpx.Client(trust_env=False, timeout=10) as client:
            whole = client.get(url)
            assert whole.status_code == 200
            assert whole.content == data
            # Browsers seek in videos with Range requests on the same URL.
            part = client.get(url, headers={"Range": "bytes=1000-1999"})
            assert part.status_code == 206
            assert part.content == data[1000:2000]


# --- the adapters -------------------------------------------------------------------


class TestLocalBlobStorage(BlobStorageContract):
    signs_urls = False

    def make_storage(self, request: pytest.FixtureRequest) -> LocalBlobStorage:
        return LocalBlobStorage(request.getfixturevalue("tmp_path") / "uploads")

    @pytest.mark.parametrize(
        "key",
        [
            "/etc/passwd",
            "../outside.mp4",
            "videos/../../outside.mp4",
            "videos/..",
            "..",
            ".",
            "./videos/a.mp4",
            "videos//a.mp4",
            "videos/",
            "videos\\..\\..\\outside.mp4",
            "C:\\outside.mp4",
            "videos/a\x00.mp4",
            "",
        ],
    )
    def test_keys_escaping_the_root_are_refused(
        self, storage: LocalBlobStorage, tmp_path: Path, key: str
    ) -> None:
        source = tmp_path / "source.bin"
        source.write_bytes(b"payload")
        before = sorted(tmp_path.rglob("*"))

        for attempt in (
            lambda: storage.put_bytes(key, b"payload", "video/mp4"),
            lambda: storage.put_file(key, source, "video/mp4"),
            lambda: storage.size(key),
            lambda: storage.read(key),
            lambda: storage.delete(key),
        ):
            with pytest.raises(ValueError):
                attempt()
        assert sorted(tmp_path.rglob("*")) == before

    def test_symlink_out_of_the_root_is_refused(
        self, storage: LocalBlobStorage, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (storage.root / "videos").symlink_to(outside, target_is_directory=True)

        with pytest.raises(ValueError):
            storage.put_bytes("videos/a.mp4", b"payload", "video/mp4")
        assert list(outside.iterdir()) == []

    def test_no_temp_files_left_behind(self, storage: LocalBlobStorage, tmp_path: Path) -> None:
        source = tmp_path / "source.mp4"
        source.write_bytes(os.urandom(300_000))
        keys = {video_key(), f"avatars/{uuid.uuid4()}.png"}
        for key in keys:
            storage.put_bytes(key, b"first", "application/octet-stream")
            storage.put_file(key, source, "application/octet-stream")  # overwrite
        storage.put_bytes("deleted.bin", b"gone", "application/octet-stream")
        storage.delete("deleted.bin")

        files = {p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*")}
        assert {f for f in files if (storage.root / f).is_file()} == keys

    def test_failed_write_keeps_old_object_and_leaves_no_temp(
        self, storage: LocalBlobStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = video_key()
        storage.put_bytes(key, b"old", "video/mp4")

        def crash(src: object, dst: object) -> None:
            raise OSError("disk on fire")

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="disk on fire"):
            storage.put_bytes(key, b"new and half-written", "video/mp4")
        monkeypatch.undo()

        assert read_all(storage, key) == b"old"
        assert [p.name for p in (storage.root / "videos").iterdir()] == [key.split("/")[1]]

    def test_root_is_created(self, tmp_path: Path) -> None:
        root = tmp_path / "not" / "yet" / "there"
        LocalBlobStorage(root).put_bytes("a.txt", b"hi", "text/plain")
        assert (root / "a.txt").read_bytes() == b"hi"


@pytest.mark.s3
class TestS3BlobStorage(BlobStorageContract):
    signs_urls = True

    def make_storage(self, request: pytest.FixtureRequest) -> S3BlobStorage:
        return S3BlobStorage(
            endpoint=request.getfixturevalue("s3_endpoint"),
            bucket=unique_bucket_name(),
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
        )

    def test_bucket_is_created_on_first_use(self, storage: S3BlobStorage) -> None:
        client = storage._client
        assert not client.bucket_exists(storage.bucket)

        storage.put_bytes("a.txt", b"hi", "text/plain")

        assert client.bucket_exists(storage.bucket)

    def test_content_type_is_stored(self, storage: S3BlobStorage, tmp_path: Path) -> None:
        source = tmp_path / "thumb.jpg"
        source.write_bytes(b"\xff\xd8\xff jpeg-ish")
        storage.put_file("thumbnails/t.jpg", source, "image/jpeg")
        storage.put_bytes("avatars/a.png", b"png-ish", "image/png")

        assert storage._client.stat_object(storage.bucket, "thumbnails/t.jpg").content_type == (
            "image/jpeg"
        )
        assert storage._client.stat_object(storage.bucket, "avatars/a.png").content_type == (
            "image/png"
        )

    def test_host_port_endpoint_with_explicit_secure(self, s3_endpoint: str) -> None:
        host_port = s3_endpoint.removeprefix("http://")
        storage = S3BlobStorage(
            host_port, unique_bucket_name(), ACCESS_KEY, SECRET_KEY, secure=False
        )
        storage.put_bytes("k", b"v", "text/plain")
        assert read_all(storage, "k") == b"v"


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("http://127.0.0.1:9000", None, ("127.0.0.1:9000", False)),
        ("https://s3.example.com", None, ("s3.example.com", True)),
        ("HTTP://minio:9000/", None, ("minio:9000", False)),
        ("minio:9000", None, ("minio:9000", True)),
        ("minio:9000", False, ("minio:9000", False)),
        ("http://minio:9000", True, ("minio:9000", True)),
    ],
)
def test_split_endpoint(endpoint: str, secure: bool | None, expected: tuple[str, bool]) -> None:
    assert split_endpoint(endpoint, secure) == expected


@pytest.mark.parametrize("endpoint", ["ftp://host", "http://host/path", "http://", ""])
def test_split_endpoint_refuses_nonsense(endpoint: str) -> None:
    with pytest.raises(ValueError):
        split_endpoint(endpoint, None)
