"""An Idempotency-Key whose request's process died is taken over by the next retry: the
command runs if it never committed, and its result is answered if it had. Against
`sora2 serve` on SQLite and PostgreSQL, with leases planted in the table as a crash leaves
them, and with the lease's owner a real process killed with SIGKILL."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.backends import POSTGRES_URL
from tests.support.processes import Cluster, Sora2Process, cluster

HOST = socket.gethostname()
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def sql(group: Cluster, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the cluster's store, as an operator at a console would."""
    if group.schema is None:
        with sqlite3.connect(group.folder / "var" / "sora2.sqlite", timeout=30) as db:
            return db.execute(statement.replace("{p}", ""), params).fetchall()
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
        cursor = db.execute(
            statement.replace("{p}", f'"{group.schema}".').replace("?", "%s"), params
        )
        return cursor.fetchall() if cursor.description else []


def register(server: Sora2Process) -> tuple[str, str]:
    name = f"u{uuid.uuid4().hex[:10]}"
    with server.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": f"{name}@example.com", "password": "password123", "username": name},
        )
        assert r.status_code == 201, r.text
        return r.json()["user"]["id"], r.json()["accessToken"]


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid  # gone, and not reused within the test


def crash_in_flight(group: Cluster, user: str, key: str, owner: str, beat: datetime) -> None:
    """What a process killed mid-request leaves: its key with no answer, and its lease."""
    sql(
        group,
        "UPDATE {p}idempotency_keys SET status = NULL, content_type = NULL, body = NULL "
        "WHERE scope = ? AND key = ?",
        (user, key),
    )
    sql(group, "DELETE FROM {p}idempotency_leases WHERE scope = ? AND key = ?", (user, key))
    sql(
        group,
        "INSERT INTO {p}idempotency_leases (scope, key, owner, beat_at) VALUES (?, ?, ?, ?)",
        (user, key, owner, beat.isoformat()),
    )


def plant_unanswered(group: Cluster, user: str, like: str, key: str, owner: str) -> None:
    """A key claimed for the same request as `like`, whose command never ran."""
    ((fingerprint,),) = sql(
        group,
        "SELECT fingerprint FROM {p}idempotency_keys WHERE scope = ? AND key = ?",
        (user, like),
    )
    now = datetime.now(UTC)
    sql(
        group,
        "INSERT INTO {p}idempotency_keys (scope, key, fingerprint, created_at) VALUES (?, ?, ?, ?)",
        (user, key, fingerprint, now.isoformat()),
    )
    crash_in_flight(group, user, key, owner, now)


def balance(server: Sora2Process, token: str) -> int:
    with server.client(token) as c:
        return c.get("/api/credits/balance").json()["balance"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dead_owners_key_is_taken_over_run_if_never_committed_replayed_if_it_was(
    tmp_path: Path, backend: str
) -> None:
    with cluster(tmp_path, backend, VIDEO_JOBS="off") as group:
        server = group.serve()
        user, token = register(server)  # 10 credits: two videos of 5
        body = {"prompt": "a kite over the dunes"}
        with server.client(token) as c:
            first = c.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k-1"})
            assert first.status_code == 201, first.text

            # k-1's command had committed when its process died, before the answer was kept
            crash_in_flight(group, user, "k-1", f"{HOST}:{dead_pid()}:x", datetime.now(UTC))
            again = c.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k-1"})
            assert again.status_code == 201, again.text
            assert again.json()["id"] == first.json()["id"]  # its result, not a second video
            assert balance(server, token) == 5

            # k-2 was claimed for the same request, but its process died before the command
            plant_unanswered(group, user, "k-1", "k-2", f"{HOST}:{dead_pid()}:x")
            ran = c.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k-2"})
            assert ran.status_code == 201, ran.text
            assert ran.json()["id"] != first.json()["id"]  # the command runs now, once
            assert balance(server, token) == 0
            replay = c.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k-2"})
            assert replay.status_code == 201 and replay.headers.get("idempotent-replayed") == "true"
            assert replay.json()["id"] == ran.json()["id"]
            assert balance(server, token) == 0

            # a silent owner elsewhere (no pid to ask): taken over once its lease is past
            plant_unanswered(group, user, "k-1", "k-3", "another-host:1:x")
            assert (
                c.post(
                    "/api/videos/generate", json=body, headers={"Idempotency-Key": "k-3"}
                ).status_code
                == 409
            )  # its lease is fresh: it may still be running
            old = datetime.now(UTC) - timedelta(minutes=5)
            crash_in_flight(group, user, "k-3", "another-host:1:x", old)
            late = c.post("/api/videos/generate", json=body, headers={"Idempotency-Key": "k-3"})
            assert late.status_code == 402, late.text  # it ran: and found no credits left
            videos = c.get("/api/videos").json()
            assert videos["total"] == 2, videos


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_key_held_by_a_live_process_waits_and_is_taken_over_once_it_is_killed(
    tmp_path: Path, backend: str
) -> None:
    with cluster(tmp_path, backend, VIDEO_JOBS="off") as group:
        server = group.serve()
        holder = group.serve()  # a second API process on the same store
        user, token = register(server)
        order = {"credits": 30, "paymentMethod": "STRIPE"}
        with server.client(token) as c:
            r = c.post("/api/credits/recharge", json=order, headers={"Idempotency-Key": "pay-0"})
            assert r.status_code == 201, r.text
            assert balance(server, token) == 40
            # the holder claimed pay-1 for the same recharge and is (as far as anyone can
            # tell) still running it
            plant_unanswered(group, user, "pay-0", "pay-1", f"{HOST}:{holder.process.pid}:x")
            busy = c.post("/api/credits/recharge", json=order, headers={"Idempotency-Key": "pay-1"})
            assert busy.status_code == 409, busy.text
            assert "still being processed" in busy.json()["message"]

            holder.kill()  # SIGKILL: it never answers, never releases its key
            taken = c.post(
                "/api/credits/recharge", json=order, headers={"Idempotency-Key": "pay-1"}
            )
            assert taken.status_code == 201, taken.text
            assert taken.json()["order"]["status"] == "PAID"
            assert balance(server, token) == 70  # the command ran, once
            replay = c.post(
                "/api/credits/recharge", json=order, headers={"Idempotency-Key": "pay-1"}
            )
            assert replay.json() == taken.json()
            assert balance(server, token) == 70
