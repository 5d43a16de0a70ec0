"""Bad input is a 400 (or 404, 413) in the error shape, never a 500, and never a traceback in
the log: deep JSON, huge bodies, long or odd path parameters, sent to `sora2 serve`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.errors import assert_error
from tests.support.processes import Sora2Process, cluster

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    with cluster(tmp_path_factory.mktemp("bad-input")) as group:
        yield group.serve()


def token_of(server: Sora2Process) -> str:
    name = f"u{uuid.uuid4().hex[:10]}"
    with server.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": f"{name}@example.com", "password": "password123", "username": name},
        )
        assert r.status_code == 201, r.text
        return r.json()["accessToken"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"email":' * 1000 + b"1" + b"}" * 1000,
        b'{"email": "a@example.com", "password": ' + b"[" * 40 + b"]" * 40 + b"}",
        b"[" * 100_000,  # never closed
    ],
    ids=["arrays-1000", "objects-1000", "inside-a-field-40", "unclosed-100k"],
)
def test_deeply_nested_json_is_a_400_without_a_traceback(server: Sora2Process, body: bytes) -> None:
    with server.client() as anonymous, server.client(token_of(server)) as signed_in:
        answers = [
            anonymous.post("/api/auth/login", content=body, headers=JSON),
            anonymous.post("/api/auth/register", content=body, headers=JSON),
            signed_in.post("/api/videos/generate", content=body, headers=JSON),
            signed_in.post(
                "/api/orders/create", content=body, headers={**JSON, "Idempotency-Key": "deep-1"}
            ),
            signed_in.put("/api/users/profile", content=body, headers=JSON),
        ]
    for r in answers:
        assert_error(r, 400)
    assert "Traceback" not in server.output()
    assert "RecursionError" not in server.output()


def test_brackets_inside_strings_do_not_count_as_nesting(server: Sora2Process) -> None:
    with server.client(token_of(server)) as c:
        r = c.post("/api/videos/generate", json={"prompt": "[[[[" * 100 + "{" * 50})
    assert r.status_code in (201, 402), r.text  # read as a prompt, not refused as deep


def test_a_body_over_the_size_limit_is_413(server: Sora2Process) -> None:
    body = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    with server.client() as c:
        assert_error(c.post("/api/auth/login", content=body, headers=JSON), 413)


@pytest.mark.parametrize(
    "path",
    [
        f"/api/files/avatars/{uuid.uuid4()}/{'a' * 300}.png",
        f"/api/files/avatars/{'a' * 300}",
        f"/api/files/avatars/{'x/' * 2000}x.png",
        f"/api/files/avatars/{'é' * 200}.png",
        "/api/files/avatars/%00.png",
        "/api/files/avatars/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/api/share/{'t' * 5000}",
        f"/api/share/{'t' * 300}/thumbnail",
        f"/api/videos/{'a' * 300}",
        "/api/orders/%00",
        "/api/orders/%ff%fe",
    ],
)
def test_long_or_odd_path_parameters_are_404(server: Sora2Process, path: str) -> None:
    with server.client(token_of(server)) as c:
        r = c.get(path)
    assert r.status_code in (400, 404), (path, r.status_code, r.text)
    assert_error(r, r.status_code)
    assert "Traceback" not in server.output()


def test_odd_query_parameters_are_400(server: Sora2Process) -> None:
    with server.client(token_of(server)) as c:
        for path in (
            "/api/videos?page=99999999999999999999999",
            "/api/videos?limit=-1",
            "/api/videos?status=" + "x" * 5000,
            "/api/credits/transactions?type=%00",
            "/api/orders?page=abc",
        ):
            assert_error(c.get(path), 400)
    assert "Traceback" not in server.output()


@pytest.mark.postgres
def test_sqlite_and_postgres_answer_the_same(tmp_path: Path) -> None:
    """The storage behind a long key must not matter: the same 404 on PostgreSQL."""
    with cluster(tmp_path, "postgres") as group:
        server = group.serve()
        with server.client() as c:
            r = c.get(f"/api/files/avatars/{uuid.uuid4()}/{'a' * 300}.png")
            assert_error(r, 404)
            r = c.post("/api/auth/login", content=b"[" * 1000 + b"]" * 1000, headers=JSON)
            assert_error(r, 400)
        assert "Traceback" not in server.output()
