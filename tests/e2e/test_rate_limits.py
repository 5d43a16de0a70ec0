"""Rate limits over real HTTP: headers, the register limit, per-user limits, Redis sharing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from sora2.adapters.rate_limit.redis import RedisRateLimitStore
from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def assert_too_many(r: httpx.Response, limit: int, window: int) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {
        "error": "Too Many Requests",
        "message": "Too many requests; try again later.",
        "statusCode": 429,
    }
    assert 1 <= int(r.headers["retry-after"]) <= window
    assert r.headers["x-ratelimit-limit"] == str(limit)
    assert r.headers["x-ratelimit-remaining"] == "0"


def register(c: httpx.Client, name: str, **headers: str) -> httpx.Response:
    return c.post(
        "/api/auth/register",
        json={"email": f"{name}@example.com", "password": "password123", "username": name},
        headers=headers,
    )


def limited(folder: Path, **env: str) -> Iterator[Api]:
    return start_api(sqlite_settings(folder, RATE_LIMIT_ENABLED="true", **env))


@pytest.fixture
def limited_api(tmp_path: Path) -> Iterator[Api]:
    yield from limited(tmp_path)


@pytest.fixture
def proxied_api(tmp_path: Path) -> Iterator[Api]:
    yield from limited(tmp_path, TRUSTED_PROXIES="127.0.0.1")


def test_api_responses_carry_the_rate_limit_headers(limited_api: Api) -> None:
    _, token = limited_api.register("alice")
    with limited_api.client(token) as c:
        before = time.time()
        first, second = c.get("/api/users/profile"), c.get("/api/credits/balance")
        after = time.time()
        assert first.status_code == second.status_code == 200
        assert first.headers["x-ratelimit-limit"] == "100"
        assert first.headers["x-ratelimit-remaining"] == "99"
        assert second.headers["x-ratelimit-remaining"] == "98"
        reset = int(first.headers["x-ratelimit-reset"])  # a Unix time, as the seed says
        assert before + 15 * 60 - 1 <= reset <= after + 15 * 60 + 1
        assert second.headers["x-ratelimit-reset"] == first.headers["x-ratelimit-reset"]
        # errors are counted and labelled too
        bad = c.get(f"/api/videos/{uuid.uuid4()}")
        assert bad.status_code == 404
        assert bad.headers["x-ratelimit-remaining"] == "97"
        # an anonymous caller from the same IP has the IP's budget, not alice's
        with limited_api.client() as anonymous:
            r = anonymous.get("/api/users/profile")
        assert r.status_code == 401
        assert r.headers["x-ratelimit-remaining"] == "99"
        # probes and docs are not limited
        for path in ("/health", "/ready", "/api-docs.json"):
            assert "x-ratelimit-limit" not in c.get(path).headers


def test_the_fourth_registration_from_one_ip_within_the_hour_is_429(limited_api: Api) -> None:
    with limited_api.client() as c:
        remaining = []
        for i in range(3):
            r = register(c, f"user{i}")
            assert r.status_code == 201, r.text
            assert r.headers["x-ratelimit-limit"] == "3"
            remaining.append(r.headers["x-ratelimit-remaining"])
        assert remaining == ["2", "1", "0"]
        r = register(c, "user3")
        assert_too_many(r, 3, 3600)
        assert int(r.headers["retry-after"]) > 3500
        # claiming another address does not help: no proxy is trusted by default
        assert_too_many(register(c, "user4", **{"X-Forwarded-For": "203.0.113.9"}), 3, 3600)
        # the refused registration created nothing
        login = c.post(
            "/api/auth/login", json={"email": "user3@example.com", "password": "password123"}
        )
        assert login.status_code == 401
        # login has its own budget
        assert login.headers["x-ratelimit-limit"] == "100"
        ok = c.post(
            "/api/auth/login", json={"email": "user0@example.com", "password": "password123"}
        )
        assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining"] == "98"


def test_the_general_limit_is_100_per_15_minutes(limited_api: Api) -> None:
    _, token = limited_api.register("alice")
    with limited_api.client(token) as c:
        for i in range(100):
            r = c.get("/api/credits/balance")
            assert r.status_code == 200, (i, r.text)
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert_too_many(c.get("/api/credits/balance"), 100, 15 * 60)
        assert_too_many(c.get("/api/users/profile"), 100, 15 * 60)
        # other rules keep their own counters
        login = c.post(
            "/api/auth/login", json={"email": "alice@example.com", "password": "password123"}
        )
        assert login.status_code == 200


def test_behind_a_trusted_proxy_each_client_ip_has_its_own_budget(proxied_api: Api) -> None:
    with proxied_api.client() as c:
        for i in range(4):
            r = register(c, f"user{i}", **{"X-Forwarded-For": f"198.51.100.{i}"})
            assert r.status_code == 201, r.text
            assert r.headers["x-ratelimit-remaining"] == "2"
        # the last hop the trusted proxy saw is the client; what it was told before is not
        spoofed = {"X-Forwarded-For": "203.0.113.7, 198.51.100.0"}
        assert [register(c, f"again{i}", **spoofed).status_code for i in range(3)] == [
            201,
            201,
            429,
        ]
        assert_too_many(register(c, "late", **{"X-Forwarded-For": "198.51.100.0"}), 3, 3600)
        assert register(c, "direct").status_code == 201  # the proxy's own address


def test_a_signed_in_user_is_limited_whatever_ip_they_use(proxied_api: Api) -> None:
    _, alice = proxied_api.register("alice")
    _, bob = proxied_api.register("bob")
    with proxied_api.client(alice) as c:
        for i in range(100):
            r = c.get("/api/credits/balance", headers={"X-Forwarded-For": f"10.0.{i // 250}.{i}"})
            assert r.status_code == 200, (i, r.text)
        r = c.get("/api/credits/balance", headers={"X-Forwarded-For": "192.0.2.200"})
        assert_too_many(r, 100, 15 * 60)
    with proxied_api.client(bob) as c:  # another user from a fresh IP is not affected
        r = c.get("/api/credits/balance", headers={"X-Forwarded-For": "192.0.2.201"})
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining"] == "99"


def test_generation_is_limited_per_user_so_users_behind_one_ip_each_get_ten(
    tmp_path: Path,
) -> None:
    with contextmanager(limited)(tmp_path, VIDEO_JOBS="off") as api:
        users = [api.register(name)[1] for name in ("alice", "bob")]
        for token in users:  # 10 videos of 5 credits each: 50 credits, 10 from the bonus
            with api.client(token) as c:
                r = c.post("/api/credits/recharge", json={"credits": 40, "paymentMethod": "STRIPE"})
                assert r.status_code == 201, r.text
        for token in users:  # one address (127.0.0.1, no proxy trusted), two budgets
            with api.client(token) as c:
                for i in range(10):
                    r = c.post("/api/videos/generate", json={"prompt": f"clip {i}"})
                    assert r.status_code == 201, (i, r.text)
                    assert r.headers["x-ratelimit-limit"] == "10"
                    assert r.headers["x-ratelimit-remaining"] == str(9 - i)
                assert_too_many(c.post("/api/videos/generate", json={"prompt": "x"}), 10, 3600)
                assert c.get("/api/credits/balance").json() == {"balance": 0}  # none charged
        with api.client() as anonymous:  # without a token, the IP's own budget
            r = anonymous.post("/api/videos/generate", json={"prompt": "x"})
            assert r.status_code == 401
            assert r.headers["x-ratelimit-remaining"] == "9"


# --- Redis -------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"sora2:test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


class LoopAwareRedisStore(RedisRateLimitStore):
    """Remembers the server loop it ran on, so the test can close it there."""

    loop: asyncio.AbstractEventLoop | None = None

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        self.loop = asyncio.get_running_loop()
        return await super().hit(key, window_seconds)

    def close_on_its_loop(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.close(), self.loop).result(timeout=5)


@pytest.fixture
def two_instances(tmp_path: Path, redis_prefix: str) -> Iterator[tuple[Api, Api]]:
    """Two API processes' worth of app, each with its own Redis store on one prefix."""
    first = limited(tmp_path / "a")
    second = limited(tmp_path / "b")
    a, b = next(first), next(second)
    stores = [LoopAwareRedisStore(REDIS_HOST, REDIS_PORT, prefix=redis_prefix) for _ in "ab"]
    try:
        a.sora2.rate_limits, b.sora2.rate_limits = stores
        yield a, b
    finally:
        for store in stores:
            store.close_on_its_loop()
        first.close()
        second.close()


@pytest.mark.redis
def test_redis_counters_are_shared_between_instances(
    two_instances: tuple[Api, Api], redis_prefix: str
) -> None:
    a, b = two_instances
    with a.client() as ca, b.client() as cb:
        answers = [register(ca, "one"), register(cb, "two"), register(ca, "three")]
        assert [r.status_code for r in answers] == [201, 201, 201]
        assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["2", "1", "0"]
        assert_too_many(register(cb, "four"), 3, 3600)
        assert_too_many(register(ca, "five"), 3, 3600)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        key = f"{redis_prefix}register:ip:127.0.0.1"
        assert int(client.get(key)) == 5
        assert 3500 * 1000 < client.pttl(key) <= 3600 * 1000
    finally:
        client.close()


@pytest.mark.redis
def test_redis_general_limit_spans_instances(two_instances: tuple[Api, Api]) -> None:
    a, b = two_instances
    _, token = a.register("alice")
    with b.client(token) as c:  # b's store knows nothing of alice: a 401, still her count
        for i in range(50):
            assert c.get("/api/credits/balance").status_code == 401, i
    with a.client(token) as c:
        for i in range(50):
            r = c.get("/api/credits/balance")
            assert r.status_code == 200, (i, r.text)
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert_too_many(c.get("/api/credits/balance"), 100, 15 * 60)
    with b.client(token) as c:
        assert_too_many(c.get("/api/users/profile"), 100, 15 * 60)
    with b.client() as c:  # anonymous callers from that IP are counted on their own
        for i in range(100):
            assert c.get("/api/credits/balance").status_code == 401, i
        assert_too_many(c.get("/api/users/profile"), 100, 15 * 60)
