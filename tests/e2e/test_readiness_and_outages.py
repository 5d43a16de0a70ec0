"""`/ready`, dependency outages and shutdown, driven as an operator sees them: real
`sora2 serve` processes started with an environment, Redis and NATS reached through ports
the test controls (a relay it can cut, a port that refuses, one that never answers), the
server's stderr read for what it logged, SIGTERM sent for real."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import redis

from tests.support.processes import Sora2Process, cluster, wait_until
from tests.support.server import free_port

REDIS_PORT = 6379
ONE_PROCESS = {"WEB_CONCURRENCY": "1"}  # each request meets the same process's state
NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
PASSWORD = "password123"


# --- ports the test controls ---------------------------------------------------------------


class Relay:
    """A TCP relay to a real server: `cut()` drops every connection and refuses new ones,
    `mend()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self.mend()

    def mend(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: no more LISTEN
            listener.close()
        for conn in self._open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # the kernel completes the handshakes; nobody ever answers
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def refused_port() -> int:
    return free_port()  # nothing listens there


# --- helpers ---------------------------------------------------------------------------------


def ready(server: Sora2Process) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    with server.client() as c:
        r = c.get("/ready")
    return r, time.monotonic() - started


def register(c: httpx.Client, name: str) -> httpx.Response:
    body = {"email": f"{name}@example.com", "password": PASSWORD, "username": name}
    return c.post("/api/auth/register", json=body)


def log_lines(server: Sora2Process) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output_all().splitlines() if line.strip()]


def warnings_about(server: Sora2Process, word: str) -> list[str]:
    return [
        e["message"]
        for e in log_lines(server)
        if e["level"] in ("warning", "error") and word in e["message"]
    ]


@pytest.fixture(autouse=True)
def _whole_log(monkeypatch: pytest.MonkeyPatch) -> None:
    def output_all(self: Sora2Process) -> str:
        return self.log_path.read_text(errors="replace")

    monkeypatch.setattr(Sora2Process, "output_all", output_all, raising=False)


# --- /ready ----------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.nats
def test_ready_checks_every_configured_dependency(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    env = {
        **ONE_PROCESS,
        "LOG_FORMAT": "json",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(REDIS_PORT),
        "NATS_URL": NATS_URL,
        "NATS_STREAM": f"R{token}",
        "NATS_SUBJECT_PREFIX": f"r{token}",
    }
    with cluster(tmp_path, **env) as group:
        server = group.serve()
        r, _ = ready(server)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready"
        assert body["checks"] == {
            "database": "ok",
            "redis": "ok",
            "nats": "ok",
            "storage": "ok",
            "processors": "ok",
        }
        assert {p["name"] for p in body["processors"]} >= {"sora2/read-models", "sora2/nats-relay"}
    asyncio.run(_delete_stream(f"R{token}"))


def test_ready_names_redis_when_its_port_refuses_and_limits_still_answer(tmp_path: Path) -> None:
    env = {
        **ONE_PROCESS,
        "LOG_FORMAT": "json",
        "RATE_LIMIT_ENABLED": "true",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(refused_port()),
    }
    with cluster(tmp_path, **env) as group:
        server = group.serve()
        r, took = ready(server)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["error"] == "Service Unavailable" and body["statusCode"] == 503
        assert "redis" in body["message"]
        assert body["checks"]["redis"] != "ok"
        assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"
        assert took < 2.5

        # rate-limited calls answer at once, counted in the process: 3 registrations an hour
        with server.client() as c:
            answers = [register(c, f"down{i}") for i in range(4)]
            assert [a.status_code for a in answers] == [201, 201, 201, 429]
            assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
            for _ in range(5):  # the general limit too, and at once (no wait on Redis)
                started = time.monotonic()
                r = c.get("/api/users/profile")
                assert (r.status_code, r.headers["x-ratelimit-limit"]) == (401, "100")
                assert time.monotonic() - started < 1.0
        # one warning for the outage, not one per request
        assert len(warnings_about(server, "Redis")) == 1, warnings_about(server, "Redis")


@pytest.mark.redis
def test_rate_limits_fall_back_while_redis_is_away_and_return_to_it(tmp_path: Path) -> None:
    relay = Relay(REDIS_PORT)
    prefix = "sora2:rl:"  # the server's own; our keys are its client address, cleaned below
    env = {
        **ONE_PROCESS,
        "LOG_FORMAT": "json",
        "RATE_LIMIT_ENABLED": "true",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(relay.port),
    }
    direct = redis.Redis(port=REDIS_PORT)
    address = "127.0.0.7"  # a loopback address of its own: its own counters in Redis
    key = f"{prefix}register:ip:{address}"
    direct.delete(key)
    try:
        with cluster(tmp_path, **env) as group:
            server = group.serve()
            transport = httpx.HTTPTransport(local_address=address)
            with httpx.Client(base_url=server.base, transport=transport, trust_env=False) as c:
                assert register(c, "up1").status_code == 201
                assert direct.get(key) == b"1"  # counted in Redis

                relay.cut()
                assert register(c, "away1").status_code == 201  # counted in the process
                assert ready(server)[0].status_code == 503
                assert direct.get(key) == b"1"
                assert len(warnings_about(server, "does not answer")) == 1

                relay.mend()
                wait_until(lambda: ready(server)[0].status_code == 200, timeout=30, what="ready")

                def shared_again() -> bool:
                    register(c, f"back{uuid.uuid4().hex[:6]}")
                    return int(direct.get(key) or 0) >= 2

                wait_until(shared_again, timeout=30, what="counting in Redis again")
                assert any("answers again" in e["message"] for e in log_lines(server))
    finally:
        relay.cut()
        direct.delete(key)
        direct.close()


def test_ready_answers_within_its_bound_when_a_dependency_hangs(tmp_path: Path) -> None:
    with (
        silent_port() as port,
        cluster(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=str(port), **ONE_PROCESS) as group,
    ):
        server = group.serve()
        r, took = ready(server)
        assert r.status_code == 503 and "redis" in r.json()["message"], r.text
        assert took < 2.5, took


@pytest.mark.nats
def test_ready_names_nats_when_it_is_unreachable_and_the_relay_backs_off(tmp_path: Path) -> None:
    env = {**ONE_PROCESS, "LOG_FORMAT": "json", "NATS_URL": f"nats://127.0.0.1:{refused_port()}"}
    with cluster(tmp_path, **env) as group:
        server = group.serve()
        with server.client() as c:
            started = time.monotonic()
            for i in range(12):  # commands keep coming: each one writes the log
                assert register(c, f"natsless{i}").status_code == 201
                time.sleep(0.25)
            elapsed = time.monotonic() - started
        r, took = ready(server)
        assert r.status_code == 503, r.text
        assert "nats" in r.json()["message"] and r.json()["checks"]["nats"] != "ok"
        assert took < 2.5
        about_nats = [
            e
            for e in log_lines(server)
            if e["level"] in ("warning", "error") and "NATS" in e["message"]
        ]
        # backing off: a handful of lines, not one a second (nor one per command)
        assert len(about_nats) <= 3, (elapsed, [e["message"] for e in about_nats])


async def _delete_stream(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await nc.close()


# --- shutdown --------------------------------------------------------------------------------

SHUTDOWN_BOUND = 15.0  # seconds from SIGTERM to the process's end, an open stream included


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_ends_open_streams_and_exits_0_in_bounded_time(
    tmp_path: Path, workers: str
) -> None:
    with cluster(tmp_path, LOG_FORMAT="json") as group:
        server = group.start("serve", "--workers", workers)
        server.wait_ready()
        with server.client() as c:
            token = register(c, "streamer").json()["accessToken"]
        events: list[str] = []
        ended: dict[str, object] = {}

        def follow() -> None:
            try:
                with (
                    server.client(token) as c,
                    c.stream(
                        "POST",
                        "/api/videos/generate-stream",
                        json={"prompt": "a long slow sunrise", "duration": 10},
                        timeout=60,
                    ) as stream,
                ):
                    ended["status"] = stream.status_code
                    for line in stream.iter_lines():
                        if line.startswith("data:"):
                            events.append(line)
                ended["cleanly"] = True
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                ended["error"] = error

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        wait_until(
            lambda: events or {"cleanly", "error"} & set(ended),
            timeout=60,
            what="the stream's first event",
        )
        assert events, (ended, server.output())
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(timeout=SHUTDOWN_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {SHUTDOWN_BOUND}s after SIGTERM:\n{server.output()}")
        took = time.monotonic() - started
        reader.join(timeout=10)
        assert code == 0, server.output()
        assert took < SHUTDOWN_BOUND
        assert ended.get("cleanly") is True, ended  # the stream ended, not cut mid-message
        assert not any(e["level"] == "error" for e in log_lines(server)), server.output()
