"""`sora2 ledger verify` and `export` against a raw scan of the same log, in one run.

Baseline: a server-side cursor over the events table (PostgreSQL named cursor in binary,
SQLite iterated) decoding every event's JSON with msgspec, nothing else: the least any
audit must do. `verify` adds the fold, the chain's SHA-256, the rules and one scan of each
read-model table; `export` the fold and writing every entry as JSON lines. Goal (issue 13):
each at least 0.5x the baseline's events/s. Medians of 3, alternated, a full collection
before each run (untimed): a fold's survivors otherwise make the cyclic collector walk the
heap during the next run, the scan's as often as not, which flattered the ratios. SQLite,
then PostgreSQL. `BENCH_LEDGER_USERS` sets the log's size (about 17 events per user).
"""

from __future__ import annotations

import gc
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402
from tests.conftest import FastHasher  # noqa: E402
from tests.support.backends import postgres_settings, sqlite_settings  # noqa: E402
from tests.support.history import make_history  # noqa: E402

from sora2.application.audit import LedgerAudit  # noqa: E402
from sora2.bootstrap import audit_store, bootstrap  # noqa: E402

USERS = int(os.environ.get("BENCH_LEDGER_USERS", "2000"))
ROUNDS = 3
GOAL = 0.5


def raw_scan(store) -> tuple[int, float]:  # noqa: ANN001
    """Events and seconds of a scan that only decodes."""
    decode = msgspec.json.Decoder().decode
    began, events = time.perf_counter(), 0
    with store.reading() as reading:
        for batch in reading.events():
            for _, _, _, _, state in batch:
                decode(state)
            events += len(batch)
    return events, time.perf_counter() - began


def verify(store) -> tuple[int, float]:  # noqa: ANN001
    began = time.perf_counter()
    report = LedgerAudit(store).verify()
    assert report.ok, report.problems[:5]
    return report.events, time.perf_counter() - began


def export(store) -> tuple[int, float]:  # noqa: ANN001
    began = time.perf_counter()
    audit = LedgerAudit(store)
    audit.export("jsonl", io.StringIO())
    return audit._folded().events, time.perf_counter() - began


def measure(label: str, settings) -> None:  # noqa: ANN001
    sora2 = bootstrap(settings, hasher=FastHasher())
    sora2.jobs.shutdown()
    try:
        make_history(sora2, USERS)
        sora2.read_models.catch_up()
        store = audit_store(sora2)
        rates: dict[str, list[float]] = {"scan": [], "verify": [], "export": []}
        for _ in range(ROUNDS):
            for name, run in (("scan", raw_scan), ("verify", verify), ("export", export)):
                gc.collect()  # each run starts clean: none pays for the garbage of the last
                events, seconds = run(store)
                rates[name].append(events / seconds)
        scan = statistics.median(rates["scan"])
        load = os.getloadavg()[0]
        for name in ("verify", "export"):
            rate = statistics.median(rates[name])
            verdict = "meets" if rate / scan >= GOAL else "misses"
            print(
                f"ledger {name}, {label}, {events:,} events: {rate:,.0f} events/s; raw "
                f"server-side cursor scan with decode {scan:,.0f} events/s ({rate / scan:.2f}x, "
                f"{verdict} the {GOAL}x goal; load {load:.1f})"
            )
    finally:
        sora2.close()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    measure("SQLite", sqlite_settings(folder / "sqlite"))
    with postgres_settings(folder / "pg") as settings:
        measure("PostgreSQL", settings)


if __name__ == "__main__":
    main()
