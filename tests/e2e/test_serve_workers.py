"""`sora2 serve` as operators run it: one HTTP process per core by default (or
`--workers N`) on one port, and a client whose requests land on any of them still reads its
own writes every time, on PostgreSQL and on the embedded SQLite file; a burst of connections
is spread over the processes, and a revoked session is refused by every one of them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    with serving(tmp_path, backend, tuple(workers)) as (base, _):
        with fresh(base) as c:
            r = c.post(
                "/api/auth/register",
                json={"email": "w@example.com", "password": "password123", "username": "wanda"},
            )
            assert r.status_code == 201, r.text
            token = r.json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        with fresh(base) as c:  # 10 signup credits; recharge enough for the videos below
            r = c.post(
                "/api/credits/recharge",
                json={"credits": 40, "paymentMethod": "STRIPE"},
                headers=auth,
            )
            assert r.status_code in (200, 201), r.text
        balance = 50
        for i in range(8):
            with fresh(base) as c:
                video = c.post("/api/videos/generate", json={"prompt": f"clip {i}"}, headers=auth)
                assert video.status_code == 201, video.text
            balance -= 5
            with fresh(base) as c:
                assert c.get("/api/credits/balance", headers=auth).json() == {"balance": balance}
            with fresh(base) as c:
                got = c.get(f"/api/videos/{video.json()['id']}", headers=auth)
                assert got.status_code == 200 and got.json()["status"] == "PENDING"
    assert "Traceback" not in (tmp_path / "server.log").read_text()  # every process started


@contextmanager
def serving(
    tmp_path: Path, backend: str = "postgres", workers: tuple[str, ...] = ("--workers", "2")
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`sora2 serve` with `workers` on `backend`: its address and its process, once it
    answers and its worker processes are up (one per core by default; one process forks
    none)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    schema = f"t_workers_{os.getpid()}_{port}"
    env = {**os.environ, **base_env(tmp_path, PUBLIC_URL=base), "VIDEO_JOBS": "off"}
    env.pop("WEB_CONCURRENCY", None)
    if backend == "postgres":
        env.update(DATABASE_URL=POSTGRES_URL, POSTGRES_SCHEMA=schema)
    expected = int(workers[1]) if workers else len(os.sched_getaffinity(0))
    expected = expected if expected > 1 else 0
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    command = [str(SORA2), "serve", "--host", "127.0.0.1", "--port", str(port), *workers]
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while len(http_processes(server.pid)) < expected or not _answers(base):
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield base, server
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


def fresh(base: str) -> httpx.Client:
    """A new connection each time: any of the processes may answer it."""
    return httpx.Client(base_url=base, trust_env=False, timeout=30)


def http_processes(pid: int) -> list[int]:
    """uvicorn's worker processes under `pid` (not multiprocessing's resource tracker)."""
    return [
        child
        for child in children(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def _sockets(pid: int, port: int, state: str, peers: set[int] | None = None) -> int:
    """How many TCP sockets on `port` in `state` (01 established, 0A listening) the process
    `pid` holds (with a peer on one of the ports `peers`, if given), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            peer_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state and fields[9] in inodes:
                count += peers is None or peer_port in peers
    return count


@pytest.mark.postgres
def test_a_burst_of_keep_alive_connections_is_spread_over_the_processes(tmp_path: Path) -> None:
    """A proxy's pool (or a load test) opens its connections at once: each process gets its
    share instead of the first one to wake taking all."""
    with serving(tmp_path) as (base, server):
        port = int(base.rsplit(":", 1)[1])
        workers = http_processes(server.pid)
        deadline = time.monotonic() + 90
        while not all(_sockets(pid, port, "0A") for pid in workers):  # both listen
            assert time.monotonic() < deadline, "a worker did not start listening"
            time.sleep(0.1)
        burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(24)]
        try:
            for sock in burst:  # every connection is made before any request is sent
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: sora2\r\n\r\n")
            for sock in burst:
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            ours = {sock.getsockname()[1] for sock in burst}
            held = {pid: _sockets(pid, port, "01", ours) for pid in workers}
            assert sum(held.values()) == len(burst), held
            assert all(count > 0 for count in held.values()), held
        finally:
            for sock in burst:
                sock.close()


@pytest.mark.postgres
def test_a_session_revoked_through_one_process_is_refused_by_every_process(
    tmp_path: Path,
) -> None:
    """A password change ends the other sessions: the old token is refused at once whichever
    process a request reaches, and a profile change is read back through any of them."""
    with serving(tmp_path) as (base, _):
        with fresh(base) as c:
            r = c.post(
                "/api/auth/register",
                json={"email": "r@example.com", "password": "password123", "username": "rita"},
            )
            assert r.status_code == 201, r.text
        old = {"Authorization": f"Bearer {r.json()['accessToken']}"}
        for round_ in range(4):
            with fresh(base) as c:
                r = c.put("/api/users/profile", json={"username": f"rita{round_}"}, headers=old)
                assert r.status_code == 200, r.text
            for _ in range(3):
                with fresh(base) as c:
                    r = c.get("/api/users/profile", headers=old)
                    assert r.json()["username"] == f"rita{round_}", r.text
        with fresh(base) as c:
            r = c.put(
                "/api/users/password",
                json={"currentPassword": "password123", "newPassword": "password456"},
                headers=old,
            )
            assert r.status_code == 200, r.text
        new = {"Authorization": f"Bearer {r.json()['accessToken']}"}
        for _ in range(12):
            with fresh(base) as c:
                assert c.get("/api/credits/balance", headers=old).status_code == 401
            with fresh(base) as c:
                assert c.get("/api/credits/balance", headers=new).status_code == 200
