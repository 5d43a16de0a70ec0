"""Paying commands on PostgreSQL at 32 connections against pgbench's one-row INSERT at 32
clients: the database's own ceiling, measured in the same run.

POST /api/videos/generate (a video and its ledger's reservation in one save) and
POST /api/orders/create, on `sora2 serve` as operators run it (VIDEO_JOBS=off: requests
only land in the log, rate limits off), with one process and with the default of one per
core; the load is wrk, spreading requests over 64 users.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_load import bench_env, ensure_wrk, free_port, register, sora2_serve, stop, wrk  # noqa: E402
from tests.support.backends import POSTGRES_URL, postgres_settings  # noqa: E402

CLIENTS = 32
SECONDS = 10
WARM_UP_SECONDS = 3  # of each command, before it is measured
COMMANDS = {
    "POST /api/videos/generate": ("/api/videos/generate", '{"prompt": "a lighthouse at dawn"}'),
    "POST /api/orders/create": ("/api/orders/create", '{"credits": 10, "paymentMethod": "STRIPE"}'),
}


def pgbench_inserts(schema: str) -> float:
    """Transactions per second of a one-row INSERT from 32 clients."""
    psql = ["psql", POSTGRES_URL, "-q", "-c"]
    subprocess.run(
        [
            *psql,
            f'CREATE SCHEMA IF NOT EXISTS "{schema}"; '
            f'CREATE TABLE IF NOT EXISTS "{schema}".bench_rows (id bigserial, v int)',
        ],
        check=True,
    )
    script = Path(tempfile.mkdtemp()) / "insert.sql"
    script.write_text(f'INSERT INTO "{schema}".bench_rows (v) VALUES (1);\n')
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-c",
            str(CLIENTS),
            "-j",
            "2",
            "-T",
            str(SECONDS),
            "-f",
            str(script),
            POSTGRES_URL,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def library_saves(schema: str) -> float:
    """The event-store library by itself: saves per second of a new two-event aggregate
    (generate saves a video's event and its ledger's) from 32 threads, one save a
    transaction, on the library's own PostgreSQL recorder: the ceiling a command per save
    would have."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    from sora2.adapters.event_store import postgres_env

    class Thing(Aggregate):
        @event("Made")
        def __init__(self, n: int) -> None:
            self.n = n

        @event("Bumped")
        def bump(self) -> None:
            self.n += 1

    env = postgres_env(POSTGRES_URL, schema)
    env.update(PERSISTENCE_MODULE="eventsourcing.postgres", POSTGRES_POOL_SIZE=str(CLIENTS))
    env.update(CREATE_TABLE="y")
    app = Application(env=env)
    saved = [0] * CLIENTS
    deadline = time.monotonic() + SECONDS

    def client(i: int) -> None:
        while time.monotonic() < deadline:
            thing = Thing(1)
            thing.bump()
            app.save(thing)
            saved[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    app.close()
    return sum(saved) / (time.monotonic() - started)


def command_rates(workers: int) -> dict[str, tuple[float, str]]:
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    with postgres_settings(folder) as settings:
        port = free_port()
        server = sora2_serve(bench_env(settings, folder), port, workers)
        base = f"http://127.0.0.1:{port}"
        try:
            tokens = [token for token, _ in register(base, 2 * CLIENTS)]
            rates = {}
            for name, (path, body) in COMMANDS.items():
                # a server that has run a moment (pooled connections prepared, ledgers cached,
                # a leader elected per lane) is what operators run; its first seconds are not
                wrk(base, path, tokens, CLIENTS, WARM_UP_SECONDS, method="POST", body=body)
                load = wrk(base, path, tokens, CLIENTS, SECONDS, method="POST", body=body)
                rates[name] = (load.rate, load.p99)
            return rates
        finally:
            stop(server)


def main() -> None:
    if ensure_wrk() is None:
        print("paying commands on PostgreSQL: skipped (wrk is not installed)")
        return
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    with postgres_settings(folder) as settings:
        inserts = pgbench_inserts(settings.postgres_schema)
    with postgres_settings(folder) as settings:
        library = library_saves(settings.postgres_schema)
    print(
        f"the event-store library alone, one two-event save a transaction, {CLIENTS} threads: "
        f"{library:,.0f} saves/s; pgbench one-row INSERT -c{CLIENTS}: {inserts:,.0f}/s; "
        f"ratio {library / inserts:.4f}x (load average {os.getloadavg()[0]:.1f})"
    )
    cores = len(os.sched_getaffinity(0))
    for workers in sorted({1, cores}):
        for name, (rate, p99) in command_rates(workers).items():
            print(
                f"{name}, PostgreSQL, -c{CLIENTS}, serve --workers {workers}: {rate:,.0f} "
                f"commands/s, p99 {p99}; pgbench one-row INSERT -c{CLIENTS}: {inserts:,.0f}/s; "
                f"ratio {rate / inserts:.4f}x; {rate / library:.2f}x the library alone "
                f"(load average {os.getloadavg()[0]:.1f})"
            )


if __name__ == "__main__":
    main()
