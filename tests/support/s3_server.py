"""A real S3 endpoint for tests: moto's standalone server, spoken to over HTTP.

The server runs as a subprocess (`python -m moto.server`) rather than in a thread so that
its state is fully isolated: in-process, any test using `moto.mock_aws` would reset the
same global backends and wipe our buckets. Every test gets its own bucket name, so tests
(and parallel runs against a shared endpoint) never see each other's objects.

Use: `from tests.support.s3_server import s3_endpoint` in a conftest.py, then request
the `s3_endpoint` fixture (a URL like `http://127.0.0.1:54321`) and `unique_bucket_name()`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

# Fake credentials: moto accepts anything, but the SDKs insist on having some.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"

START_TIMEOUT = 30.0  # seconds; a cold start (importing moto) takes about 1-2 s


@dataclass
class MotoServer:
    """A running moto server subprocess and the URL it answers on."""

    process: subprocess.Popen[bytes]
    endpoint: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def unique_bucket_name() -> str:
    """A fresh, valid bucket name so no two tests or runs share objects."""
    return f"sora2-test-{uuid.uuid4().hex[:12]}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    # Never let a developer's real AWS profile leak into the fake server.
    env.pop("AWS_PROFILE", None)
    return env


def start_moto_server(attempts: int = 3) -> MotoServer:
    """Start moto on a free 127.0.0.1 port and wait until it answers HTTP.

    The port is picked before the server binds it, so another process can steal it in
    between; the server then exits at once and we retry with a new port.
    """
    last_error = ""
    for _ in range(attempts):
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        # Logs go to an unnamed temp file, not a pipe: nobody drains a pipe once the
        # server is up, and a full or closed pipe would stall or break its logging.
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                env=_server_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            server = MotoServer(process, endpoint)
            if _wait_until_up(server):
                return server
            server.stop()
            log.seek(0)
            last_error = log.read().decode(errors="replace")[-2000:] or "no output"
    raise RuntimeError(f"could not start moto server: {last_error}")


def _wait_until_up(server: MotoServer) -> bool:
    """Poll until moto answers on the endpoint; False if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                # moto's own status API: proves it is moto (not a squatter) on this port.
                if client.get(f"{server.endpoint}/moto-api/data.json").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server shared by the whole session (e.g. http://127.0.0.1:5xxxx)."""
    server = start_moto_server()
    try:
        yield server.endpoint
    finally:
        server.stop()
