"""Request ids and the log, read the way an operator reads them: a real `sora2 serve`
process, its stderr captured, every response's `X-Request-ID` looked up in it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.processes import Sora2Process, cluster, wait_until

PASSWORD = "password123-Secret!"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sora2Process]:
    """One server for the module (each test uses its own accounts and ids)."""
    with cluster(
        tmp_path_factory.mktemp("logs"),
        LOG_FORMAT="json",
        RATE_LIMIT_ENABLED="true",
        STRIPE_SECRET_KEY="sk_test_not_used_here",
        STRIPE_WEBHOOK_SECRET="whsec_not_used_here",
    ) as group:
        yield group.serve()


def client_from(server: Sora2Process, address: str) -> httpx.Client:
    """A client at its own loopback address: its own rate-limit budget."""
    return httpx.Client(
        base_url=server.base,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=30,
        trust_env=False,
    )


def lines(server: Sora2Process) -> list[dict[str, Any]]:
    text = server.log_path.read_text(errors="replace")
    parsed = []
    for line in text.splitlines():
        if line.strip():
            parsed.append(json.loads(line))  # one format: every line is a JSON object
    return parsed


def access_line(server: Sora2Process, request_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next(
            (
                entry
                for entry in lines(server)
                if entry.get("logger") == "sora2.access" and entry.get("request_id") == request_id
            ),
            None,
        )

    return wait_until(found, timeout=10, what=f"the access line of {request_id}")  # type: ignore[return-value]


def test_every_response_has_a_request_id_and_its_log_line(server: Sora2Process) -> None:
    with server.client() as c:
        answers = [
            c.get("/health"),
            c.get("/no/such/route"),  # the router's own 404
            c.get("/api/users/profile"),  # 401
            c.post("/api/auth/register", json={"email": "x"}),  # 400
            c.post("/api/auth/login", content=b"{not json", headers={"content-type": "x/y"}),
        ]
    seen = set()
    for answer in answers:
        request_id = answer.headers["x-request-id"]
        assert str(uuid.UUID(request_id)) == request_id  # generated: a UUID
        entry = access_line(server, request_id)
        assert entry["status"] == answer.status_code
        assert entry["level"] == "info" and entry["message"].startswith(entry["method"])
        assert isinstance(entry["duration_ms"], int | float) and "timestamp" in entry
        seen.add(request_id)
    assert len(seen) == len(answers)


def test_the_clients_request_id_is_kept_cleaned_and_bounded(server: Sora2Process) -> None:
    with server.client() as c:
        kept = c.get("/health", headers={"X-Request-ID": "edge-7f3a:01/abc=+@x"})
        cleaned = c.get("/health", headers={"X-Request-ID": 'a"b<c>d{e} f;g'})
        long = c.get("/health", headers={"X-Request-ID": "z" * 500})
        unusable = c.get("/health", headers={"X-Request-ID": "<>{}"})
    assert kept.headers["x-request-id"] == "edge-7f3a:01/abc=+@x"
    assert cleaned.headers["x-request-id"] == "abcdefg"
    assert long.headers["x-request-id"] == "z" * 128
    assert uuid.UUID(unusable.headers["x-request-id"])  # nothing left: a new one
    for answer in (kept, cleaned, long):
        access_line(server, answer.headers["x-request-id"])


def test_a_rate_limited_answer_has_its_request_id(server: Sora2Process) -> None:
    with client_from(server, "127.0.0.2") as c:
        for i in range(3):
            body = {"email": f"r{i}@example.com", "password": PASSWORD, "username": f"r{i}x"}
            assert c.post("/api/auth/register", json=body).status_code == 201
        refused = c.post(
            "/api/auth/register",
            json={"email": "r9@example.com", "password": PASSWORD, "username": "r9x"},
            headers={"X-Request-ID": "the-fourth"},
        )
    assert refused.status_code == 429
    assert refused.headers["x-request-id"] == "the-fourth"
    assert access_line(server, "the-fourth")["status"] == 429


def test_a_line_written_inside_a_handler_carries_the_request_id(server: Sora2Process) -> None:
    with server.client() as c:
        r = c.post(
            "/api/payments/stripe/webhook",
            content=b"{}",
            headers={"Stripe-Signature": "t=1,v1=00", "X-Request-ID": "hook-1"},
        )
    assert r.status_code == 400 and r.headers["x-request-id"] == "hook-1"

    def warning() -> dict[str, Any] | None:
        return next(
            (e for e in lines(server) if "rejected a Stripe webhook" in e.get("message", "")),
            None,
        )

    entry = wait_until(warning, timeout=10, what="the handler's warning")
    assert entry["request_id"] == "hook-1"  # type: ignore[index]
    assert entry["level"] == "warning"  # type: ignore[index]


def test_no_token_password_or_share_link_reaches_the_log(server: Sora2Process) -> None:
    with client_from(server, "127.0.0.3") as c:
        body = {"email": "owner@example.com", "password": PASSWORD, "username": "owner"}
        registered = c.post("/api/auth/register", json=body).json()
        access = registered["accessToken"]
        refresh = c.cookies.get("refreshToken") or ""
        login = c.post("/api/auth/login", json={"email": body["email"], "password": PASSWORD})
        assert login.status_code == 200
        authed = {"Authorization": f"Bearer {access}"}
        video = c.post("/api/videos/generate", json={"prompt": "a red kite"}, headers=authed)
        assert video.status_code == 201, video.text
        status = f"/api/videos/{video.json()['id']}/status"
        wait_until(
            lambda: c.get(status, headers=authed).json()["status"] == "COMPLETED",
            timeout=240,
            what="the video to complete",
        )
        share = c.post(f"/api/videos/{video.json()['id']}/share", headers=authed)
        share_url = share.json().get("shareUrl") or share.json().get("url") or ""
        share_token = share_url.rstrip("/").rsplit("/", 1)[-1]
        assert share_token, share.text
        ids = [
            c.get(f"/api/share/{share_token}").headers["x-request-id"],
            c.get(f"/api/share/{share_token}/thumbnail").headers["x-request-id"],
            c.get(
                f"/api/videos/{video.json()['id']}/download",
                params={"token": access, "signature": "s3cr3t-sig", "page": "2"},
            ).headers["x-request-id"],
        ]
    for request_id in ids:
        entry = access_line(server, request_id)
        assert "[redacted]" in entry["path"]
    download = access_line(server, ids[2])
    assert "page=2" in download["path"]  # harmless parameters stay readable
    text = server.log_path.read_text()
    for secret in (access, refresh, share_token, PASSWORD, "s3cr3t-sig"):
        if secret:
            assert secret not in text
    assert not re.search(r"eyJ[\w-]{10,}\.[\w-]{10,}", text)  # no JWT of any kind


@pytest.mark.parametrize("processes", ["1", "2"])
def test_one_access_line_a_request_and_never_the_clients_address(
    tmp_path_factory: pytest.TempPathFactory, processes: str
) -> None:
    """uvicorn's own access line (with the client's address) stays off, one process or
    several: RequestLog's masked line is the only one."""
    with cluster(tmp_path_factory.mktemp("access"), LOG_FORMAT="json") as group:
        server = group.serve(WEB_CONCURRENCY=processes)
        with client_from(server, "127.0.0.9") as c:
            ids = [c.get("/health").headers["x-request-id"] for _ in range(4)]
        for request_id in ids:
            access_line(server, request_id)
        entries = lines(server)
        for request_id in ids:
            mine = [e for e in entries if e.get("request_id") == request_id]
            assert [e["logger"] for e in mine] == ["sora2.access"], mine
        assert not [e for e in entries if e.get("logger") == "uvicorn.access"]
        assert "127.0.0.9" not in server.log_path.read_text(errors="replace")
