"""POST /api/videos/generate on PostgreSQL at 32 connections against pgbench's one-row
INSERT at 32 clients: the database's own ceiling, measured in the same run.

The server is `sora2 serve` as operators run it (VIDEO_JOBS=off: requests only land in the
log, rate limits off); the load is wrk, spreading requests over 32 users. wrk comes from
Debian's packages: installed here if missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from tests.support.backends import POSTGRES_URL, postgres_settings  # noqa: E402

CLIENTS = 32
SECONDS = 10
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str | None:
    if shutil.which("wrk") is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True)
    return shutil.which("wrk")


def pgbench_inserts(schema: str) -> float:
    """Transactions per second of a one-row INSERT from 32 clients."""
    psql = ["psql", POSTGRES_URL, "-q", "-c"]
    subprocess.run(
        [
            *psql,
            f'CREATE SCHEMA IF NOT EXISTS "{schema}"; '
            f'CREATE TABLE IF NOT EXISTS "{schema}".bench_rows (id bigserial, v int)',
        ],
        check=True,
    )
    script = Path(tempfile.mkdtemp()) / "insert.sql"
    script.write_text(f'INSERT INTO "{schema}".bench_rows (v) VALUES (1);\n')
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-c",
            str(CLIENTS),
            "-j",
            "2",
            "-T",
            str(SECONDS),
            "-f",
            str(script),
            POSTGRES_URL,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def serve(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen:
    command = [str(ROOT / ".venv/bin/sora2"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def wrk_generate(wrk: str, base: str, tokens: list[str]) -> tuple[float, str]:
    script = Path(tempfile.mkdtemp()) / "generate.lua"
    script.write_text(
        "local tokens = " + json.dumps(tokens).replace("[", "{").replace("]", "}") + "\n"
        "local i = 0\n"
        "wrk.method = 'POST'\n"
        'wrk.body = \'{"prompt": "a lighthouse at dawn"}\'\n'
        "wrk.headers['Content-Type'] = 'application/json'\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  wrk.headers['Authorization'] = 'Bearer ' .. tokens[(i % #tokens) + 1]\n"
        "  return wrk.format(nil, '/api/videos/generate')\n"
        "end\n"
    )
    out = subprocess.run(
        [wrk, "-t2", f"-c{CLIENTS}", f"-d{SECONDS}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} generate requests failed")
    return rate, p99


def generate_rate(workers: int) -> tuple[float, str]:
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    with postgres_settings(folder) as settings:
        port = free_port()
        env = {
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
        server = serve(env, port, workers)
        base = f"http://127.0.0.1:{port}"
        try:
            tokens = []
            for i in range(CLIENTS):
                r = httpx.post(
                    f"{base}/api/auth/register",
                    json={
                        "email": f"b{i}@example.com",
                        "password": "password123",
                        "username": f"bench{i}",
                    },
                    timeout=30,
                )
                tokens.append(r.json()["accessToken"])
            return wrk_generate(ensure_wrk() or "wrk", base, tokens)
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    if ensure_wrk() is None:
        print("generate on PostgreSQL: skipped (wrk is not installed)")
        return
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    with postgres_settings(folder) as settings:
        inserts = pgbench_inserts(settings.postgres_schema)
    for workers in (1, 2):
        rate, p99 = generate_rate(workers)
        print(
            f"POST generate, PostgreSQL, -c{CLIENTS}, serve --workers {workers}: {rate:,.0f} "
            f"commands/s, p99 {p99}; pgbench one-row INSERT -c{CLIENTS}: {inserts:,.0f}/s; "
            f"ratio {rate / inserts:.4f}x (load average {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
