"""What the HTTP benchmarks share: a free port, wrk (from Debian's packages, installed here
if missing), a server process started and waited for, and a wrk run read back."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str | None:
    if shutil.which("wrk") is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True)
    return shutil.which("wrk")


def started(command: list[str], env: dict[str, str], health_url: str) -> subprocess.Popen:
    """Start a server and return once `health_url` answers 200."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}")
        try:
            if httpx.get(health_url).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def sora2_serve(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    command = [str(ROOT / ".venv/bin/sora2"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return started([*command, "--workers", str(workers)], env, f"http://127.0.0.1:{port}/health")


@dataclass(frozen=True)
class Load:
    rate: float  # requests per second
    p99: str


def wrk(
    base: str,
    path: str,
    tokens: list[str],
    clients: int,
    seconds: int,
    method: str = "GET",
    body: str | None = None,
) -> Load:
    """wrk at `clients` connections, each request signed in as the next of `tokens`; any
    non-2xx answer fails the run (a fast error is not a fast answer)."""
    script = Path(tempfile.mkdtemp()) / "load.lua"
    script.write_text(
        "local tokens = " + json.dumps(tokens).replace("[", "{").replace("]", "}") + "\n"
        # each of wrk's threads takes every other token, so two threads never send as the
        # same user at once (a user racing themselves is not what is measured)
        "local n = 0\n"
        "setup = function(thread) thread:set('offset', n); n = n + 1 end\n"
        "local i = nil\n"
        f"wrk.method = '{method}'\n"
        + (f"wrk.body = {json.dumps(body)}\n" if body is not None else "")
        + "wrk.headers['Content-Type'] = 'application/json'\n"
        "request = function()\n"
        "  i = (i or offset) + 2\n"
        "  if #tokens > 0 then\n"
        "    wrk.headers['Authorization'] = 'Bearer ' .. tokens[(i % #tokens) + 1]\n"
        "  end\n"
        f"  return wrk.format(nil, '{path}')\n"
        "end\n"
    )
    out = subprocess.run(
        [
            ensure_wrk() or "wrk",
            "-t2",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} requests to {path} failed")
    return Load(
        float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1),
    )


def register(base: str, n: int) -> list[tuple[str, str]]:
    """n new users: (access token, user id) each."""
    users = []
    for i in range(n):
        r = httpx.post(
            f"{base}/api/auth/register",
            json={"email": f"b{i}@example.com", "password": "password123", "username": f"bench{i}"},
            timeout=30,
        )
        r.raise_for_status()
        users.append((r.json()["accessToken"], r.json()["user"]["id"]))
    return users


def bench_env(settings, folder: Path) -> dict[str, str]:  # noqa: ANN001
    """`sora2 serve` as operators run it on PostgreSQL, with jobs and rate limits off."""
    return {
        **os.environ,
        "NODE_ENV": "development",
        "DATABASE_URL": settings.database_url,
        "POSTGRES_SCHEMA": settings.postgres_schema,
        "VIDEO_JOBS": "off",
        "RATE_LIMIT_ENABLED": "false",
        "SIGNUP_BONUS_CREDITS": "1000000",
        "SORA2_VAR_DIR": str(folder / "var"),
        "UPLOAD_DIR": str(folder / "uploads"),
    }
