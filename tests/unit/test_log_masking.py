"""What a log line may show: credentials masked wherever they appear, request ids cleaned."""

from __future__ import annotations

import uuid

import pytest

from sora2.adapters.http.request_log import loggable_path, request_id_of
from sora2.adapters.logs import masked

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        (f"token was {JWT} here", JWT),
        ("GET /api/share/Zx9_Ab-31kq/thumbnail", "Zx9_Ab-31kq"),
        ("GET /api/media/v.mp4?expires=1&signature=abc123def", "abc123def"),
        ("GET /events?token=tok-123&page=2", "tok-123"),
        ("GET /x?access_token=zzz&api_key=kkk", "zzz"),
        ("GET /x?access_token=zzz&api_key=kkk", "kkk"),
        ("connecting to postgresql://sora:hunter2@db:5432/sora2", "hunter2"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
    ],
)
def test_credentials_are_masked(text: str, hidden: str) -> None:
    shown = masked(text)
    assert hidden not in shown
    assert "[redacted]" in shown


def test_harmless_text_is_left_alone() -> None:
    text = "GET /api/videos/7b0e?page=2&limit=20 200"
    assert masked(text) == text


def test_a_loggable_path_masks_share_tokens_and_query_secrets() -> None:
    scope = {"path": "/api/share/secret-token", "query_string": b"sig=1&page=3"}
    assert loggable_path(scope) == "/api/share/[redacted]?sig=[redacted]&page=3"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (b"req-42", "req-42"),
        (b"a\r\nfake log line", "afakelogline"),
        (b"x" * 300, "x" * 128),
        ("caf\u00e9".encode(), "caf"),
    ],
)
def test_a_clients_request_id_is_cleaned_and_bounded(given: bytes, kept: str) -> None:
    assert request_id_of([(b"x-request-id", given)]) == kept


@pytest.mark.parametrize("headers", [[], [(b"x-request-id", b"")], [(b"x-request-id", b"{}<>")]])
def test_without_a_usable_id_a_new_one_is_made(headers: list[tuple[bytes, bytes]]) -> None:
    made = request_id_of(headers)
    assert str(uuid.UUID(made)) == made
