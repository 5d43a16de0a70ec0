"""Kill -9 the real server while it renders; the next start finishes the paid job.

No in-process shortcuts: `sora2 serve` runs as a subprocess with the embedded defaults
(SQLite event store, local storage, the LocalRenderer), is SIGKILLed mid-render - no
shutdown hook runs - and is started again on the same files. The video must end COMPLETED
and the ledger must hold exactly one CONSUME for it and no REFUND (the product resumes
an interrupted job rather than failing it), with the balance equal to the entries' sum.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_api
from tests.support.backends import base_env, sqlite_settings
from tests.support.generators import ScriptedGenerator
from tests.support.server import free_port
from tests.support.videos import (
    assert_ledger_consistent,
    balance,
    entry_types,
    generate,
    mp4_info,
    transactions,
    wait_for_status,
)

SORA2 = Path(sys.executable).with_name("sora2")
# environment that would point the server at other adapters than the embedded ones
FOREIGN = (
    "DATABASE_URL",
    "NATS_URL",
    "REDIS_HOST",
    "AWS_S3_BUCKET",
    "S3_ENDPOINT",
    "SMTP_URL",
    "VIDEO_PROVIDER_URL",
    "PORT",
)


class Server:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
        env.update(base_env(folder, PUBLIC_URL=self.base))
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.folder / f"server-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            # one process, so kill -9 ends the whole server (its jobs are what is tested)
            [
                str(SORA2),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=self.env,
            cwd=self.folder,  # no stray .env from the repository
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.output()
                try:
                    if client.get(f"{self.base}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no job cleanup, no flushing - a real crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.folder.glob("server-*.log"))
        )

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, trust_env=False)


@contextmanager
def sora2_server(folder: Path) -> Iterator[Server]:
    server = Server(folder, free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_a_job_killed_mid_render_completes_after_restart_and_the_ledger_balances(
    tmp_path: Path,
) -> None:
    with sora2_server(tmp_path) as server:
        server.start()
        with server.client() as anonymous:
            registered = anonymous.post(
                "/api/auth/register",
                json={"email": "crash@example.com", "password": "password123", "username": "crash"},
            )
            assert registered.status_code == 201, registered.text
        token = registered.json()["accessToken"]
        with server.client(token) as client:
            paid = client.post(
                "/api/credits/recharge", json={"credits": 10, "paymentMethod": "STRIPE"}
            )
            assert paid.status_code == 201, paid.text
            assert balance(client) == 20
            response = client.post(
                "/api/videos/generate", json={"prompt": "a long drive at night", "duration": 20}
            )
            assert response.status_code == 201, response.text
            video = response.json()
            running = wait_for_status(client, video["id"], rendering_or_over, timeout=60)
            assert running["status"] == "PROCESSING", running  # still rendering when killed
            assert running["progress"] < 50, running

        server.kill()

        leftovers = list((tmp_path / "uploads").rglob("*"))
        assert not [p for p in leftovers if p.is_file()], leftovers  # nothing half-stored

        server.start()  # the same SQLite file, the same upload folder
        with server.client(token) as client:
            first = client.get(f"/api/videos/{video['id']}/status").json()
            assert first["status"] == "PROCESSING", first  # resumed, not yet done again
            assert balance(client) == 0  # the cost is still reserved, not refunded

            final = wait_for_status(client, video["id"], timeout=120, interval=0.2)

            assert final["status"] == "COMPLETED", (final, server.output())
            assert final["progress"] == 100
            mp4 = client.get(f"/api/videos/{video['id']}/download")
            assert mp4.status_code == 200
            info = mp4_info(mp4.content)
            assert (info.width, info.height) == (1280, 720)
            assert info.duration == pytest.approx(20.0, abs=0.1)

            # the ledger: 10 signup + 10 recharge - 20 for the video, charged exactly once
            assert entry_types(client) == [("REWARD", 10), ("RECHARGE", 10), ("CONSUME", -20)]
            assert balance(client) == 10 + 10 - 20 == sum(t["amount"] for t in transactions(client))
            assert_ledger_consistent(client)

            done = client.get(f"/api/videos/{video['id']}").json()

        files = sorted(p.name for p in (tmp_path / "uploads").rglob("*") if p.is_file())
        assert files == [f"{video['id']}.jpg", f"{video['id']}.mp4"]  # no orphaned temp files

        # a third start finds nothing left to do: the job is not rendered or charged again
        server.stop()
        server.start()
        with server.client(token) as client:
            first = client.get("/ready").json()["jobSweeps"]
            deadline = time.monotonic() + 60
            while client.get("/ready").json()["jobSweeps"] < first + 2:  # two whole sweeps
                assert time.monotonic() < deadline, "the restarted server never swept"
                time.sleep(0.05)
            assert client.get(f"/api/videos/{video['id']}").json() == done
            assert entry_types(client) == [("REWARD", 10), ("RECHARGE", 10), ("CONSUME", -20)]
        server.stop()

        # the auditors' replay of the event log agrees with every projection and invariant
        audit = subprocess.run(
            [str(SORA2), "ledger", "verify"],
            env=server.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert audit.stdout.startswith("OK"), audit.stdout


def rendering_or_over(status: dict[str, object]) -> bool:
    if status["status"] == "PROCESSING":
        return int(status["progress"]) > 0  # type: ignore[call-overload]
    return status["status"] != "PENDING"


def test_a_second_process_leaves_a_job_the_first_still_renders(tmp_path: Path) -> None:
    """A rolling restart: a new process starts (and sweeps for unfinished videos) while the
    old one is still rendering. The old runner's claim is alive, so the new process does not
    render it a second time; the old one completes it and both serve the files."""
    settings = sqlite_settings(tmp_path)
    old_renderer, new_renderer = ScriptedGenerator(), ScriptedGenerator()
    new_renderer.release.set()
    old = start_api(settings, generator=old_renderer)
    old_api = next(old)
    try:
        _, token = old_api.register("alice")
        with old_api.client(token) as client:
            video = generate(client, "HOLD in the old process")
            wait_for_status(client, video["id"], lambda s: s["progress"] > 0)
            new = start_api(settings, generator=new_renderer)
            new_api = next(new)
            try:
                jobs, deadline = new_api.sora2.jobs, time.monotonic() + 30
                while jobs.claims_refused < 2:  # it found the job twice and left it
                    assert time.monotonic() < deadline, "the new process never swept"
                    time.sleep(0.02)
                assert new_renderer.requests == []  # it left the live runner's job alone
                old_renderer.release.set()
                assert wait_for_status(client, video["id"])["status"] == "COMPLETED"

                for api in (old_api, new_api):
                    with api.client(token) as c:
                        download = c.get(f"/api/videos/{video['id']}/download")
                        assert download.status_code == 200, download.text
                        assert c.get(f"/api/videos/{video['id']}/thumbnail").status_code == 200
                assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5)]
            finally:
                for _ in new:
                    pass
    finally:
        for _ in old:
            pass
