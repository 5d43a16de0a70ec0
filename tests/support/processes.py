"""`sora2 serve` and `sora2 worker` as operators run them: real processes, killed for real.

Each process gets the environment of a test's store (SQLite folder or PostgreSQL schema)
and logs to a file in the test's folder, so a failing assertion can show what it said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.backends import POSTGRES_URL, base_env
from tests.support.server import free_port

SORA2 = Path(sys.executable).with_name("sora2")
# environment that would point a process at other adapters than the test chose
FOREIGN = (
    "DATABASE_URL",
    "POSTGRES_SCHEMA",
    "NATS_URL",
    "REDIS_HOST",
    "AWS_S3_BUCKET",
    "S3_ENDPOINT",
    "SMTP_URL",
    "VIDEO_PROVIDER_URL",
    "PORT",
)


class Sora2Process:
    """One `sora2 serve` (with a port) or `sora2 worker` process."""

    def __init__(
        self, folder: Path, env: dict[str, str], command: str, name: str, *extra: str
    ) -> None:
        self.folder, self.env, self.command, self.name = folder, env, command, name
        self.port = free_port() if command == "serve" else None
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        args = [str(SORA2), command]
        if command == "serve":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        args += extra
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            args, env={**env, "PUBLIC_URL": self.base}, cwd=folder, stdout=log, stderr=log
        )
        log.close()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=3) as c:
            while time.monotonic() < deadline:
                assert self.alive(), f"{self.name} ended:\n{self.output()}"
                try:
                    if c.get(f"{self.base}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start:\n{self.output()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a real crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, trust_env=False)


class Cluster:
    """Processes sharing one store; every one started is stopped at the end."""

    def __init__(self, folder: Path, env: dict[str, str], schema: str | None) -> None:
        self.folder, self.env, self.schema = folder, env, schema
        self.processes: list[Sora2Process] = []

    def start(self, command: str = "serve", *args: str, **env: str) -> Sora2Process:
        """Start `sora2 <command> [args]`; a `serve` gets a port of its own."""
        name = f"{command}-{len(self.processes)}"
        process = Sora2Process(self.folder, {**self.env, **env}, command, name, *args)
        self.processes.append(process)
        return process

    def serve(self, **env: str) -> Sora2Process:
        process = self.start("serve", **env)
        process.wait_ready()
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@contextmanager
def cluster(folder: Path, backend: str = "sqlite", **env: str) -> Iterator[Cluster]:
    """Processes on one SQLite folder or one fresh PostgreSQL schema (dropped afterwards)."""
    base = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    base["WEB_CONCURRENCY"] = "1"  # one HTTP process unless a test asks for more
    base.update(base_env(folder, **env))
    schema = None
    if backend == "postgres":
        schema = f"t_{uuid.uuid4().hex[:16]}"
        base.update(DATABASE_URL=POSTGRES_URL, POSTGRES_SCHEMA=schema)
    group = Cluster(folder, base, schema)
    try:
        yield group
    finally:
        group.stop()
        if schema:
            subprocess.run(
                ["psql", POSTGRES_URL, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
                capture_output=True,
            )


def wait_until(condition: Callable[[], object], timeout: float = 30, what: str = "") -> object:
    """Poll `condition` until it is truthy; its value, or an AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)
