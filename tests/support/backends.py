"""Settings for each backend a test can run on, every run with its own names.

SQLite: a file in the test's temp folder. PostgreSQL: a fresh schema in the `test`
database (DATABASE_URL of the machine's server), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sora2.adapters.event_store import drop_schema, postgres_env
from sora2.config import Settings

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_SECRET = "test-access-secret-0123456789-abcdefghijklmnop"
TEST_REFRESH_SECRET = "test-refresh-secret-0123456789-abcdefghijklmn"


def base_env(folder: Path, **overrides: str) -> dict[str, str]:
    env = {
        "NODE_ENV": "test",
        "SORA2_VAR_DIR": str(folder / "var"),
        "UPLOAD_DIR": str(folder / "uploads"),
        "JWT_SECRET": TEST_SECRET,
        "JWT_REFRESH_SECRET": TEST_REFRESH_SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "PUBLIC_URL": "http://testserver",
    }
    env.update(overrides)
    return env


def sqlite_settings(folder: Path, **overrides: str) -> Settings:
    return Settings.from_env(base_env(folder, **overrides), dotenv=folder / "no.env")


@contextmanager
def postgres_settings(folder: Path, **overrides: str) -> Iterator[Settings]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    env = base_env(folder, DATABASE_URL=POSTGRES_URL, POSTGRES_SCHEMA=schema, **overrides)
    try:
        yield Settings.from_env(env, dotenv=folder / "no.env")
    finally:
        drop_schema(postgres_env(POSTGRES_URL, None), schema)


def cli_env(settings: Settings, folder: Path) -> dict[str, str]:
    """The environment a `sora2` command needs to reach this test's store."""
    env = {**os.environ, **base_env(folder)}
    env["SORA2_VAR_DIR"] = str(settings.var_dir)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
        env["POSTGRES_SCHEMA"] = settings.postgres_schema or "public"
    return env
