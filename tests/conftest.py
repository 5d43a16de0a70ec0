"""Shared fixtures: an app on each backend, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sora2.adapters.http.app import create_app
from sora2.bootstrap import Sora2, bootstrap
from sora2.config import Settings
from tests.support.backends import postgres_settings, sqlite_settings
from tests.support.server import client, serving

pytest_plugins = [
    "tests.support.s3_server",
    "tests.support.fake_video_provider",
    "tests.support.eventsource",
]


class FastHasher:
    """argon2 at its cheapest cost, so suites that register hundreds of users stay quick."""

    def __init__(self) -> None:
        from sora2.adapters.security.passwords import Argon2PasswordHasher

        self._inner = Argon2PasswordHasher(time_cost=1, memory_cost=64)

    def hash(self, password: str) -> str:
        return self._inner.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        return self._inner.verify(password_hash, password)


@dataclass
class Api:
    """A running API: its container, base URL and a client factory."""

    sora2: Sora2
    base: str

    def client(self, token: str | None = None) -> httpx.Client:
        return client(self.base, token)

    def register(self, name: str, password: str = "password123") -> tuple[dict[str, Any], str]:
        with self.client() as c:
            r = c.post(
                "/api/auth/register",
                json={"email": f"{name}@example.com", "password": password, "username": name},
            )
            assert r.status_code == 201, r.text
            body = r.json()
            return body["user"], body["accessToken"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield sqlite_settings(tmp_path)
    else:
        with postgres_settings(tmp_path) as settings:
            yield settings


def start_api(settings: Settings, **adapters: Any) -> Iterator[Api]:
    adapters.setdefault("hasher", FastHasher())
    sora2 = bootstrap(settings, **adapters)
    from sora2.adapters.http.app import create_app as make

    app = make(sora2)
    try:
        with serving(app) as base:
            sora2.settings = settings.model_copy(update={"public_url": base})
            yield Api(sora2, base)
    finally:
        sora2.close()


running_api = contextmanager(start_api)  # `with running_api(settings) as api:`


@pytest.fixture
def api(backend_settings: Settings) -> Iterator[Api]:
    """The API on SQLite and on PostgreSQL."""
    yield from start_api(backend_settings)


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    yield from start_api(sqlite_settings(tmp_path))


__all__ = ["Api", "FastHasher", "create_app", "running_api", "start_api"]
