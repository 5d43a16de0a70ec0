"""End-to-end benchmarks on embedded defaults, each against a baseline measured in the same run.

- generate → COMPLETED for a 5 s 16:9 clip, against the clip's own length (real time);
- GET /api/credits/balance from the read model, against folding the ledger's events per
  request (what the projection saves us).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.application import project_aggregate  # noqa: E402
from tests.support.backends import sqlite_settings  # noqa: E402
from tests.support.server import client, serving  # noqa: E402

from sora2.adapters.http.app import create_app  # noqa: E402
from sora2.bootstrap import bootstrap  # noqa: E402
from sora2.domain.credits.ledger import CreditLedger  # noqa: E402


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    sora2 = bootstrap(sqlite_settings(folder, SIGNUP_BONUS_CREDITS="100000"))
    with serving(create_app(sora2)) as base, client(base) as anonymous:
        r = anonymous.post(
            "/api/auth/register",
            json={"email": "bench@example.com", "password": "password123", "username": "bench"},
        )
        token = r.json()["accessToken"]
        user_id = r.json()["user"]["id"]
        with client(base, token) as c:
            generate(c)
            balance_reads(c, sora2, user_id)
    sora2.close()


def generate(c) -> None:  # noqa: ANN001
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        video = c.post("/api/videos/generate", json={"prompt": "a lighthouse at dawn"}).json()
        while c.get(f"/api/videos/{video['id']}/status").json()["status"] != "COMPLETED":
            time.sleep(0.05)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    print(
        f"generate→COMPLETED 5s 16:9 over HTTP: best {best:.2f} s of 3 "
        f"(median {statistics.median(timings):.2f} s) = {5 / best:.2f}x real time"
    )


def balance_reads(c, sora2, user_id: str) -> None:  # noqa: ANN001
    for i in range(200):  # a ledger with history: 200 reserve/refund pairs
        c.post("/api/videos/generate", json={"prompt": f"clip {i}"})
    sora2.jobs.shutdown(wait=False)
    n = 300
    started = time.perf_counter()
    for _ in range(n):
        c.get("/api/credits/balance")
    projected = (time.perf_counter() - started) / n
    ledger_id = CreditLedger.create_id(__import__("uuid").UUID(user_id))
    started = time.perf_counter()
    for _ in range(n):  # from the first event: the log's snapshots would shorten the fold
        project_aggregate(None, sora2.log.events.get(ledger_id)).balance  # noqa: B018
    folded = (time.perf_counter() - started) / n
    events = len(list(sora2.log.events.get(ledger_id)))
    print(
        f"balance: read model over HTTP {projected * 1000:.2f} ms/request; "
        f"folding the {events}-event ledger in-process {folded * 1000:.2f} ms "
        f"(projection {folded / projected:.2f}x the fold's speed, HTTP included)"
    )


if __name__ == "__main__":
    main()
