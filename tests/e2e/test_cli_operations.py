"""The `sora2` command and `./dev` as an operator meets them: a version, one-line errors
with exit 2 and no traceback, a start-up that refuses an unsafe production configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import base_env

ROOT = Path(__file__).resolve().parents[2]
SORA2 = Path(sys.executable).with_name("sora2")
STRONG = {
    "JWT_SECRET": "kR7vQ2mX9pL4tW8zN1bC6hF3jD5sG0aE-yU",
    "JWT_REFRESH_SECRET": "Zq8v3mN0pLr5tY7wXa2bC4dE6fG9hJkLmNo",
}


def sora2(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NODE_ENV")}
    return subprocess.run(
        [str(SORA2), *args],
        env={**clean, **base_env(tmp_path), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(run: subprocess.CompletedProcess[str], *words: str) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("sora2")]
    assert len(errors) == 1, run.stderr
    assert "Traceback" not in run.stderr and 'File "' not in run.stderr, run.stderr
    for word in words:
        assert word in errors[0], errors[0]


def test_version(tmp_path: Path) -> None:
    run = sora2(tmp_path, "--version")
    assert run.returncode == 0, run.stderr
    from importlib.metadata import version

    assert run.stdout.strip() == f"sora2 {version('sora2')}"


def test_export_to_a_missing_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "dir" / "x.csv"
    run = sora2(tmp_path, "ledger", "export", "--format", "csv", "--output", str(target))
    assert_one_line_error(run, str(target), "No such file or directory")
    assert not target.parent.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), ["command"]),
        (("ledger", "exprt"), ["invalid choice", "exprt"]),
        (("ledger", "balance", "--user", "x", "--at", "yesterday"), ["ISO 8601"]),
        (("serve", "--port", "http"), ["--port"]),
        (("nonsense",), ["nonsense"]),
    ],
)
def test_argument_errors_are_one_line_exit_2(
    tmp_path: Path, args: tuple[str, ...], words: list[str]
) -> None:
    assert_one_line_error(sora2(tmp_path, *args), *words)


def test_an_unreachable_database_is_one_line_exit_2(tmp_path: Path) -> None:
    run = sora2(
        tmp_path, "ledger", "verify", DATABASE_URL="postgresql://postgres@127.0.0.1:9/nothing"
    )
    assert_one_line_error(run, "database is not reachable")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NODE_ENV": "prod"}, "NODE_ENV"),
        ({"NODE_ENV": "Staging"}, "NODE_ENV"),
        ({"NODE_ENV": "PRODUCTION", "PAYMENTS_SANDBOX": "true", **STRONG}, "PAYMENTS_SANDBOX"),
        (
            {"NODE_ENV": "production", "JWT_SECRET": "a" * 48, "JWT_REFRESH_SECRET": "b" * 48},
            "JWT_SECRET",
        ),
        (
            {
                "NODE_ENV": "Production",
                "JWT_SECRET": STRONG["JWT_SECRET"],
                "JWT_REFRESH_SECRET": STRONG["JWT_SECRET"],
            },
            "JWT_REFRESH_SECRET",
        ),
    ],
)
def test_serve_refuses_an_unsafe_configuration(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    run = sora2(tmp_path, "serve", "--port", "9", **env)  # never gets to bind
    assert_one_line_error(run, "configuration error", named)
    for secret in ("a" * 48, STRONG["JWT_SECRET"]):
        assert secret not in run.stderr


def test_a_dotenv_with_comments_and_quotes_starts(tmp_path: Path) -> None:
    """`.env` in the working folder: an inline comment no longer stops the start."""
    (tmp_path / ".env").write_text(
        "# settings\nNODE_ENV=Test   # any case\nSIGNUP_BONUS_CREDITS=25 # inline comment\n"
        "FRONTEND_URL='https://app.example'\n"
    )
    run = sora2(tmp_path, "ledger", "verify", NODE_ENV="", SIGNUP_BONUS_CREDITS="")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK"), run.stdout


def test_dev_alone_lists_the_recipes() -> None:
    run = subprocess.run(
        ["./dev"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert run.returncode == 0, run.stderr
    for recipe in ("serve", "worker", "test", "unit", "lint", "ledger"):
        assert f"    {recipe}" in run.stdout
