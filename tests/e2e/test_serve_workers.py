"""`sora2 serve` as operators run it: one HTTP process per core by default (or
`--workers N`) on one port, and a client whose requests land on any of them still reads its
own writes every time, on PostgreSQL and on the embedded SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.backends import POSTGRES_URL, base_env
from tests.support.server import free_port

SORA2 = Path(sys.executable).with_name("sora2")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.parametrize(
    ("backend", "workers"),
    [
        pytest.param("postgres", ["--workers", "2"], marks=pytest.mark.postgres),
        pytest.param("sqlite", [], id="sqlite-default-workers"),
    ],
)
def test_several_processes_serve_and_every_request_reads_its_writes(
    tmp_path: Path, backend: str, workers: list[str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    schema = f"t_workers_{os.getpid()}_{port}"
    env = {**os.environ, **base_env(tmp_path, PUBLIC_URL=base), "VIDEO_JOBS": "off"}
    env.pop("WEB_CONCURRENCY", None)
    if backend == "postgres":
        env.update(DATABASE_URL=POSTGRES_URL, POSTGRES_SCHEMA=schema)
    expected = 2 if workers else len(os.sched_getaffinity(0))  # the default: one per core
    expected = expected if expected > 1 else 0  # one process: uvicorn forks no worker
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [str(SORA2), "serve", "--host", "127.0.0.1", "--port", str(port), *workers],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        # the worker processes (under uvicorn's parent), each serving once started
        assert len(children(server.pid)) >= expected

        def fresh() -> httpx.Client:  # a new connection each time: either process answers
            return httpx.Client(base_url=base, trust_env=False, timeout=30)

        with fresh() as c:
            r = c.post(
                "/api/auth/register",
                json={"email": "w@example.com", "password": "password123", "username": "wanda"},
            )
            assert r.status_code == 201, r.text
            token = r.json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        with fresh() as c:  # 10 signup credits; recharge enough for the videos below
            r = c.post(
                "/api/credits/recharge",
                json={"credits": 40, "paymentMethod": "STRIPE"},
                headers=auth,
            )
            assert r.status_code in (200, 201), r.text
        balance = 50
        for i in range(8):
            with fresh() as c:
                video = c.post("/api/videos/generate", json={"prompt": f"clip {i}"}, headers=auth)
                assert video.status_code == 201, video.text
            balance -= 5
            with fresh() as c:
                assert c.get("/api/credits/balance", headers=auth).json() == {"balance": balance}
            with fresh() as c:
                got = c.get(f"/api/videos/{video.json()['id']}", headers=auth)
                assert got.status_code == 200 and got.json()["status"] == "PENDING"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if backend == "postgres":
            subprocess.run(
                ["psql", POSTGRES_URL, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
                capture_output=True,
            )
