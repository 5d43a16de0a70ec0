"""Processes survive their neighbours: drills on real `sora2 serve` / `sora2 worker`
processes sharing one PostgreSQL schema (and SQLite where it applies).

- many processes started at once on a fresh schema all come up (schema set-up is serialised);
- every pooled connection terminated by the server costs no request;
- a crashed runner's job is taken over before the jobs waiting behind it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.backends import POSTGRES_URL
from tests.support.fake_video_provider import running_fake_provider
from tests.support.processes import Cluster, Sora2Process, cluster, wait_until

pytestmark = pytest.mark.postgres


def psql(statement: str) -> str:
    done = subprocess.run(
        ["psql", POSTGRES_URL, "-At", "-c", statement], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def register(server: Sora2Process, name: str | None = None) -> str:
    name = name or f"u{uuid.uuid4().hex[:10]}"
    with server.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": f"{name}@example.com", "password": "password123", "username": name},
        )
        assert r.status_code == 201, (r.text, server.output())
        return r.json()["accessToken"]


def test_eight_workers_and_two_servers_started_at_once_on_a_fresh_schema_all_stay_up(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, "postgres", VIDEO_JOBS="off") as group:
        workers = [group.start("worker") for _ in range(8)]
        servers = [group.start("serve", "--workers", "2") for _ in range(2)]  # 4 HTTP processes
        for server in servers:
            server.wait_ready(timeout=120)
        for worker in workers:  # each says it takes jobs once its container is built
            wait_until(
                lambda w=worker: "taking video jobs" in w.output() or not w.alive(),
                timeout=120,
                what=f"{worker.name} to start",
            )
        time.sleep(1)  # a process dying just after start-up would show now
        dead = [p.name for p in (*workers, *servers) if not p.alive()]
        assert not dead, "\n".join(p.output() for p in (*workers, *servers) if not p.alive())
        for p in (*workers, *servers):
            assert "tuple concurrently updated" not in p.output()
            assert "Traceback" not in p.output(), p.output()
        # and they work together: a video requested through one server is seen by the other
        token = register(servers[0])
        with servers[0].client(token) as c:
            video = c.post("/api/videos/generate", json={"prompt": "a lighthouse"})
            assert video.status_code == 201, video.text
        with servers[1].client(token) as c:
            r = c.get(f"/api/videos/{video.json()['id']}")
            assert r.status_code == 200, r.text


def terminate_connections_of(app_name: str) -> int:
    return int(
        psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE application_name = '{app_name}'"
        )
    )


def test_every_pooled_connection_terminated_by_the_server_costs_no_request(
    tmp_path: Path,
) -> None:
    app_name = f"sora2-drill-{uuid.uuid4().hex[:8]}"
    with cluster(tmp_path, "postgres", VIDEO_JOBS="off", PGAPPNAME=app_name) as group:
        server = group.serve()
        tokens = [register(server) for _ in range(3)]
        for token in tokens:  # warm the pool: several connections in use, then idle
            with server.client(token) as c:
                assert c.post(
                    "/api/credits/recharge", json={"credits": 20, "paymentMethod": "STRIPE"}
                ).status_code in (200, 201)
        for drill in range(3):
            killed = terminate_connections_of(app_name)
            assert killed >= 1, "the server holds no connection to terminate"
            answers = []
            for i, token in enumerate(tokens):
                with server.client(token) as c:
                    answers += [
                        c.get("/api/users/profile"),
                        c.get("/api/credits/balance"),
                        c.get("/api/videos"),
                        c.post("/api/videos/generate", json={"prompt": f"drill {drill} {i}"}),
                        c.post(
                            "/api/orders/create", json={"credits": 5, "paymentMethod": "ALIPAY"}
                        ),
                    ]
            failed = [(r.request.method, r.request.url.path, r.status_code) for r in answers]
            failed = [f for f in failed if f[2] >= 500]
            assert not failed, (failed, server.output())
        with server.client(tokens[0]) as c:  # 10 bonus + 20 bought - 3 videos of 5
            assert c.get("/api/credits/balance").json() == {"balance": 15}
        assert "Traceback" not in server.output(), server.output()


# --- a crashed runner's jobs ----------------------------------------------------------------


def owner_pid(group: Cluster, video_id: str) -> int | None:
    worker = psql(f"SELECT worker FROM \"{group.schema}\".video_jobs WHERE video_id = '{video_id}'")
    parts = worker.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def test_a_crashed_runners_job_is_taken_over_before_the_jobs_waiting_behind_it(
    tmp_path: Path,
) -> None:
    with (
        running_fake_provider(polls_to_complete=4) as provider,  # ~8 s a video (2 s polls)
        cluster(
            tmp_path,
            "postgres",
            VIDEO_JOBS="off",
            VIDEO_JOB_CONCURRENCY="1",
            VIDEO_JOB_LEASE_SECONDS="10",
            VIDEO_PROVIDER_URL=provider.base_url,
            VIDEO_PROVIDER_API_KEY=provider.api_key,
        ) as group,
    ):
        server = group.serve()
        workers = [group.start("worker") for _ in range(2)]
        for worker in workers:
            wait_until(lambda w=worker: "taking video jobs" in w.output(), 120, worker.name)
        token = register(server)
        with server.client(token) as c:
            paid = c.post("/api/credits/recharge", json={"credits": 30, "paymentMethod": "STRIPE"})
            assert paid.status_code == 201, paid.text

            def generate(prompt: str) -> str:
                r = c.post("/api/videos/generate", json={"prompt": prompt})
                assert r.status_code == 201, r.text
                return r.json()["id"]

            def status(video_id: str) -> str:
                return c.get(f"/api/videos/{video_id}").json()["status"]

            crashed = generate("the crashed runner's video")
            first_owner = wait_until(lambda: owner_pid(group, crashed), 60, "a runner to claim")
            victim = next(w for w in workers if w.process.pid == first_owner)
            survivor = next(w for w in workers if w is not victim)
            busy = generate("keeps the survivor busy")
            wait_until(lambda: owner_pid(group, busy) == survivor.process.pid, 60, "busy claimed")
            waiting = [generate(f"waiting {i}") for i in range(6)]

            victim.kill()
            killed_at = time.monotonic()
            wait_until(
                lambda: owner_pid(group, crashed) == survivor.process.pid,
                timeout=10 + 8 + 15,  # the lease, the render the survivor is busy with, slack
                what="the survivor to take the crashed job over",
            )
            taken_after = time.monotonic() - killed_at
            wait_until(lambda: status(crashed) == "COMPLETED", 120, "the taken-over video")
            done_before = [v for v in waiting if status(v) == "COMPLETED"]
            # the survivor may have started one waiting job before its sweep saw the crash
            assert len(done_before) <= 1, (taken_after, done_before)
            for video_id in [busy, *waiting]:
                wait_until(lambda v=video_id: status(v) == "COMPLETED", 180, video_id)
            assert c.get("/api/credits/balance").json() == {"balance": 0}  # each charged once
        assert survivor.alive(), survivor.output()
