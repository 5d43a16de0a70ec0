"""GET /api/credits/balance on PostgreSQL at 64 connections against a bare Litestar +
msgspec endpoint answering one SELECT of the same row (bench/bare_app.py) under granian
with 2 workers and uvloop: the least an HTTP read of a row costs on this machine.

Both run side by side in one run, alternated three times; the medians are compared.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_load import (  # noqa: E402
    ROOT,
    bench_env,
    ensure_wrk,
    free_port,
    register,
    sora2_serve,
    started,
    stop,
    wrk,
)
from tests.support.backends import postgres_settings  # noqa: E402

CLIENTS = 64
SECONDS = 8
ROUNDS = 3
WORKERS = 2


def main() -> None:
    if ensure_wrk() is None:
        print("balance on PostgreSQL: skipped (wrk is not installed)")
        return
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    with postgres_settings(folder) as settings:
        env = bench_env(settings, folder)
        ours_port, bare_port = free_port(), free_port()
        ours = sora2_serve(env, ours_port, WORKERS)
        ours_base = f"http://127.0.0.1:{ours_port}"
        bare = started(
            [
                str(ROOT / ".venv/bin/granian"),
                "--interface",
                "asgi",
                "--loop",
                "uvloop",
                "--workers",
                str(WORKERS),
                "--host",
                "127.0.0.1",
                "--port",
                str(bare_port),
                "--no-ws",
                "--log-level",
                "warning",
                "bench.bare_app:app",
            ],
            {**env, "PYTHONPATH": str(ROOT)},
            f"http://127.0.0.1:{bare_port}/balance/none",
        )
        try:
            users = register(ours_base, 16)
            ours_rates, bare_rates, p99s = [], [], []
            for _ in range(ROUNDS):
                load = wrk(
                    ours_base, "/api/credits/balance", [t for t, _ in users], CLIENTS, SECONDS
                )
                ours_rates.append(load.rate)
                p99s.append(load.p99)
                bare_rates.append(
                    wrk(
                        f"http://127.0.0.1:{bare_port}",
                        f"/balance/{users[0][1]}",
                        [],
                        CLIENTS,
                        SECONDS,
                    ).rate
                )
        finally:
            stop(ours)
            stop(bare)
    ours_rate, bare_rate = statistics.median(ours_rates), statistics.median(bare_rates)
    print(
        f"GET /api/credits/balance, PostgreSQL, wrk -c{CLIENTS}, serve --workers {WORKERS}: "
        f"{ours_rate:,.0f} req/s (p99 {sorted(p99s)[len(p99s) // 2]}); bare one-SELECT app "
        f"under granian --workers {WORKERS}: {bare_rate:,.0f} req/s; ratio "
        f"{ours_rate / bare_rate:.2f}x (medians of {ROUNDS}, load average "
        f"{os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
