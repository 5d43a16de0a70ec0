"""Security headers as a browser receives them from `sora2 serve`: tokens and personal data
never cached, nothing sniffed, framed or referred onwards, served files unable to run
anything, HSTS in production, and no banner naming the server software."""

from __future__ import annotations

import io
import secrets
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.processes import cluster

EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def assert_hardened(r: httpx.Response, hsts: bool = False) -> None:
    for name, value in EVERYWHERE.items():
        assert r.headers.get(name) == value, (r.request.url, name, dict(r.headers))
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "server" not in r.headers, r.headers["server"]
    assert ("strict-transport-security" in r.headers) is hsts, dict(r.headers)
    if hsts:
        assert "max-age=31536000" in r.headers["strict-transport-security"]


def test_every_response_is_hardened_and_tokens_and_personal_data_are_never_cached(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, RATE_LIMIT_ENABLED="true") as group:
        server = group.serve()
        with server.client() as c:
            registered = c.post(
                "/api/auth/register",
                json={"email": "h@example.com", "password": "password123", "username": "helen"},
            )
            assert registered.status_code == 201
            token = registered.json()["accessToken"]
            login = c.post(
                "/api/auth/login", json={"email": "h@example.com", "password": "password123"}
            )
            refreshed = c.post(
                "/api/auth/refresh-token",
                headers={"Cookie": f"refreshToken={login.cookies['refreshToken']}"},
            )
            assert refreshed.status_code == 200, refreshed.text
            anonymous = [
                c.get("/health"),
                c.get("/api/users/profile"),  # 401 from a handler
                c.get("/api/no-such-route"),  # 404 from the router
                c.delete("/api/auth/login"),  # 405
                c.post(
                    "/api/auth/login", content=b"{", headers={"content-type": "application/json"}
                ),
                c.get("/api-docs.json"),
            ]
        with server.client(token) as c:
            personal = [
                c.get("/api/users/profile"),
                c.get("/api/credits/balance"),
                c.get("/api/credits/transactions"),
                c.get("/api/videos"),
            ]
            uploaded = c.post("/api/users/avatar", files={"file": ("a.png", png(), "image/png")})
            assert uploaded.status_code == 200, uploaded.text
            avatar = c.get(uploaded.json()["avatarUrl"])
        for r in [registered, login, refreshed, *personal]:  # a token or personal data
            assert r.status_code in (200, 201), r.text
            assert r.headers["cache-control"] == "no-store", (r.request.url, dict(r.headers))
            assert_hardened(r)
        for r in anonymous:
            assert_hardened(r)
            assert r.headers["cache-control"] == "no-store"
        # a served file runs nothing, even opened directly as a page of this origin
        assert avatar.status_code == 200 and avatar.headers["content-type"] == "image/png"
        assert_hardened(avatar)
        policy = avatar.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy
        assert "script-src" not in policy
        # Swagger UI keeps its own scripts, but cannot be framed either
        with httpx.Client(base_url=server.base, trust_env=False) as c:
            docs = c.get("/api-docs")
            assert docs.status_code == 200
            assert_hardened(docs)
            # the rate limiter's own 429 too
            answers = [
                c.post(
                    "/api/auth/register",
                    json={
                        "email": f"r{i}@example.com",
                        "password": "password123",
                        "username": f"r{i}",
                    },
                )
                for i in range(4)
            ]
            assert answers[-1].status_code == 429
            assert_hardened(answers[-1])
            assert answers[-1].headers["cache-control"] == "no-store"


@pytest.mark.parametrize("workers", [1, 2])
def test_production_adds_hsts(tmp_path: Path, workers: int) -> None:
    secrets_env = {
        "NODE_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "JWT_REFRESH_SECRET": secrets.token_urlsafe(48),
        "PAYMENTS_SANDBOX": "false",
    }
    with cluster(tmp_path, **secrets_env) as group:
        # `sora2 serve --workers N` builds its app in each process (adapters/http/processes.py)
        server = group.start("serve", "--workers", str(workers))
        server.wait_ready()
        with server.client() as c:
            r = c.post(
                "/api/auth/register",
                json={
                    "email": f"{uuid.uuid4().hex[:8]}@example.com",
                    "password": "password123",
                    "username": "prod",
                },
            )
            assert r.status_code == 201, (r.text, server.output())
            assert_hardened(r, hsts=True)
            assert_hardened(c.get("/api/nothing-here"), hsts=True)
