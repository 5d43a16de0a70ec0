"""`sora2 serve` as its own process, configured by environment only, as operators run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.backends import base_env
from tests.support.server import free_port

SORA2 = Path(sys.executable).with_name("sora2")
STRONG_SECRET = "prod-access-secret-0123456789-abcdefghijklmnopq"
STRONG_REFRESH = "prod-refresh-secret-0123456789-abcdefghijklmno"


@dataclass
class ServerProcess:
    base: str
    env: dict[str, str]  # what it was started with: `sora2` commands reach the same store
    folder: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sora2(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SORA2), *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
        )


def production_env(folder: Path, **overrides: str) -> dict[str, str]:
    """Production on embedded SQLite: strong secrets, no sandbox, no DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES"))}
    env.update(base_env(folder, NODE_ENV="production"))
    env.update(JWT_SECRET=STRONG_SECRET, JWT_REFRESH_SECRET=STRONG_REFRESH, VIDEO_JOBS="off")
    env.update(overrides)
    return env


@contextmanager
def running_server(folder: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "PUBLIC_URL": base}
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(SORA2), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start: " + log_path.read_text()
            time.sleep(0.1)
        yield ServerProcess(base, env, folder, log_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
