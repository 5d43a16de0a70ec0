"""`sora2 ledger …` as an auditor runs it: a separate process over the stored log.

The history is written through the services (sign-ups, orders paid once despite a
repeated callback, videos completed, cancelled, failed and deleted while running); the
commands then run as real subprocesses configured only by the environment, and their
output is checked against the read models and the amounts the scenario implies.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from sora2.application.audit import iso
from sora2.application.ports import GeneratedVideo
from sora2.application.projections.rows import CreditRow
from sora2.bootstrap import bootstrap
from sora2.config import Settings
from tests.conftest import FastHasher
from tests.support.backends import POSTGRES_URL, base_env, postgres_settings, sqlite_settings

# variables that would point the subprocess at another store or service
FOREIGN_SETTINGS = (
    "DATABASE_URL",
    "POSTGRES_SCHEMA",
    "REDIS_HOST",
    "NATS_URL",
    "AWS_S3_BUCKET",
    "S3_ENDPOINT",
    "SMTP_URL",
    "VIDEO_PROVIDER_URL",
    "SIGNUP_BONUS_CREDITS",
    "VIDEO_CREDITS_PER_SECOND",
)

ALICE = [  # (type, amount, balance) in order
    ("REWARD", 10, 10),
    ("RECHARGE", 100, 110),
    ("CONSUME", -5, 105),  # completed
    ("CONSUME", -10, 95),  # cancelled ...
    ("REFUND", 10, 105),  # ... and refunded
    ("CONSUME", -15, 90),  # deleted while running ...
    ("REFUND", 15, 105),  # ... so cancelled and refunded
]
BOB = [
    ("REWARD", 10, 10),
    ("RECHARGE", 50, 60),
    ("CONSUME", -5, 55),  # failed ...
    ("REFUND", 5, 60),  # ... and refunded once, however often the failure is reported
]
ENTRIES = len(ALICE) + len(BOB)


class TickingClock:
    """One minute per reading, so entries have distinct instants to ask a balance at."""

    def __init__(self) -> None:
        self.current = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


@dataclass
class Scenario:
    folder: Path
    alice: UUID
    bob: UUID
    entries: dict[UUID, list[CreditRow]]  # the read models' entries, oldest first
    events: int


def write_history(settings: Settings, folder: Path) -> Scenario:
    sora2 = bootstrap(settings, hasher=FastHasher(), clock=TickingClock())
    sora2.jobs.shutdown()  # the test drives each video to its end itself
    try:
        alice = sora2.accounts.register("alice@example.com", "alice", "password123").user.id
        bob = sora2.accounts.register("bob@example.com", "bob", "password123").user.id
        order = sora2.orders.create(alice, 100, "STRIPE")
        assert sora2.orders.confirm_payment(order.id, "pay-1") is True
        assert sora2.orders.confirm_payment(order.id, "pay-1") is False  # repeated callback
        assert sora2.credits.recharge(bob, 50, "ALIPAY").order.status == "PAID"  # sandbox
        sora2.orders.create(bob, 70, "WECHAT")  # never paid: no entry

        done = sora2.videos.request(alice, "a lighthouse at dusk", 5, "16:9").id
        assert sora2.videos.start_job(done) is not None
        (folder / "v.mp4").write_bytes(b"not really an mp4")
        (folder / "t.jpg").write_bytes(b"not really a jpeg")
        files = GeneratedVideo(folder / "v.mp4", folder / "t.jpg")
        assert sora2.videos.complete_job(done, files)

        cancelled = sora2.videos.request(alice, "a storm at sea", 10, "16:9").id
        sora2.videos.cancel(alice, cancelled)

        failed = sora2.videos.request(bob, "a cat on a piano", 5, "1:1").id
        sora2.videos.start_job(failed)
        assert sora2.videos.fail_job(failed, "boom") is True
        assert sora2.videos.fail_job(failed, "boom") is False

        running = sora2.videos.request(alice, "a city from above", 15, "9:16").id
        sora2.videos.start_job(running)
        sora2.videos.delete(alice, running)

        entries = {
            user: list(reversed(sora2.views.credits(user, None, 1, 100).items))
            for user in (alice, bob)
        }
        return Scenario(folder, alice, bob, entries, sora2.log.position)
    finally:
        sora2.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    folder = tmp_path_factory.mktemp("ledger")
    return write_history(sqlite_settings(folder), folder)


@pytest.fixture
def fresh_history(tmp_path: Path) -> Scenario:
    """A history of the test's own, to tamper with."""
    return write_history(sqlite_settings(tmp_path), tmp_path)


def ledger(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`sora2 ledger <args>` in a fresh process, configured like the server would be."""
    environment = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
    environment.update(base_env(folder, **env))
    return subprocess.run(
        [sys.executable, "-m", "sora2", "ledger", *args],
        cwd=folder,  # no stray .env
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


# --- verify -----------------------------------------------------------------------------------


def test_verify_replays_the_log_and_finds_the_read_models_equal(history: Scenario) -> None:
    out = ok(ledger(history.folder, "verify"))
    assert out.splitlines()[0] == (
        f"OK: 2 users, {ENTRIES} entries, {history.events} events replayed; read models match"
    )
    assert "PROBLEM" not in out


def test_verify_names_the_user_whose_projected_balance_was_tampered_with(
    fresh_history: Scenario,
) -> None:
    database = fresh_history.folder / "var" / "sora2.sqlite"
    with closing(sqlite3.connect(database)) as db, db:
        changed = db.execute(
            "UPDATE rm_balances SET balance = balance + 1 WHERE user_id = ?",
            (str(fresh_history.bob),),
        ).rowcount
    assert changed == 1

    result = ledger(fresh_history.folder, "verify")

    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stdout.strip().splitlines()
    assert [line for line in lines if line.startswith("PROBLEM")] == [
        f"PROBLEM: rm_balances user {fresh_history.bob}: balance is 61 in the read"
        " model, 60 in the log [read-model]"
    ]
    assert lines[1].startswith(f"FAILED: 1 problem; 2 users, {ENTRIES} entries")
    assert str(fresh_history.alice) not in result.stdout


def test_verify_names_a_tampered_entry(fresh_history: Scenario) -> None:
    entry = fresh_history.entries[fresh_history.alice][2]  # the first CONSUME
    database = fresh_history.folder / "var" / "sora2.sqlite"
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE rm_credits SET amount = -4 WHERE id = ?", (str(entry.id),))

    result = ledger(fresh_history.folder, "verify")

    assert result.returncode == 1
    assert (
        f"PROBLEM: rm_credits entry {entry.id} (user {fresh_history.alice}, CONSUME"
        " -4, seq " in result.stdout
    )
    assert "amount is -4 in the read model, -5 in the log" in result.stdout


# --- history and balances -----------------------------------------------------------------------


def history_rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if re.match(r"^\s*\d+\s", line)]


@pytest.mark.parametrize("who", ["id", "email"])
def test_history_lists_the_entries_in_order_with_running_balances(
    history: Scenario, who: str
) -> None:
    user = str(history.alice) if who == "id" else "Alice@Example.com"
    out = ok(ledger(history.folder, "history", "--user", user))

    assert out.splitlines()[0] == f"Credit history of alice@example.com (user {history.alice})"
    rows = history_rows(out)
    expected = history.entries[history.alice]
    assert [(r[2], int(r[3]), int(r[4])) for r in rows] == ALICE
    assert [r[0] for r in rows] == [str(n) for n in range(1, len(ALICE) + 1)]
    assert [r[1] for r in rows] == [iso(e.created_at) for e in expected]
    assert [r[5] for r in rows] == [
        str(e.reference_id) if e.reference_id else "-" for e in expected
    ]
    assert [r[6] for r in rows] == [str(e.id) for e in expected]
    assert out.splitlines()[-1] == f"Balance: 105 credits after {len(ALICE)} entries"


def test_balance_at_an_instant_between_two_entries_is_the_earlier_balance(
    history: Scenario,
) -> None:
    entries = history.entries[history.bob]
    recharge, consume = entries[1], entries[2]
    between = recharge.created_at + (consume.created_at - recharge.created_at) / 2
    assert recharge.created_at < between < consume.created_at

    out = ok(ledger(history.folder, "balance", "--user", str(history.bob), "--at", iso(between)))

    assert out.strip() == (
        f"Balance of bob@example.com (user {history.bob}) at {iso(between)}: 60 credits"
    )


def test_balance_now_at_an_entry_and_before_any(history: Scenario) -> None:
    bob = str(history.bob)
    first = history.entries[history.bob][0].created_at

    def balance(*at: str) -> str:
        return ok(ledger(history.folder, "balance", "--user", bob, *at)).strip()

    assert balance().endswith("now: 60 credits")
    assert balance("--at", iso(first)).endswith(": 10 credits")
    same_instant = first.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert balance("--at", same_instant).endswith(": 10 credits")
    assert balance("--at", iso(first - timedelta(seconds=1))).endswith(": 0 credits")
    naive = first.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert balance("--at", naive).endswith(": 10 credits")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "--user", "nobody@example.com"], "no user has the email nobody@example.com"),
        (["history", "--user", "00000000-0000-0000-0000-000000000000"], "no user has the id"),
        (["balance", "--user", "alice"], "must be a user id (UUID) or an email"),
        (["balance", "--user", "alice@example.com", "--at", "yesterday"], "not an ISO 8601"),
        (["export", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    history: Scenario, args: list[str], message: str
) -> None:
    result = ledger(history.folder, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


# --- export ---------------------------------------------------------------------------------


def expected_records(history: Scenario, *users: UUID) -> list[dict[str, object]]:
    return [
        {
            "id": str(e.id),
            "userId": str(e.user_id),
            "type": e.type,
            "amount": e.amount,
            "balance": e.balance,
            "reference": str(e.reference_id) if e.reference_id else None,
            "createdAt": iso(e.created_at),
        }
        for user in users
        for e in history.entries[user]
    ]


def log_order(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(records, key=lambda r: str(r["createdAt"]))


def test_export_jsonl_writes_every_entry_of_every_user_in_log_order(history: Scenario) -> None:
    out = ok(ledger(history.folder, "export", "--format", "jsonl"))
    records = [json.loads(line) for line in out.splitlines()]
    assert records == log_order(expected_records(history, history.alice, history.bob))
    assert [
        (r["type"], r["amount"], r["balance"]) for r in records if r["userId"] == str(history.bob)
    ] == BOB


def test_export_csv_of_one_user_to_a_file(history: Scenario, tmp_path: Path) -> None:
    target = tmp_path / "alice.csv"
    result = ledger(
        history.folder,
        "export",
        "--format",
        "csv",
        "--user",
        "alice@example.com",
        "--output",
        str(target),
    )
    assert ok(result) == ""
    assert "exported 7 entries" in result.stderr
    text = target.read_text()
    assert text.splitlines()[0] == "id,userId,type,amount,balance,reference,createdAt"
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = [
        {k: "" if v is None else str(v) for k, v in record.items()}
        for record in expected_records(history, history.alice)
    ]
    assert rows == expected
    assert [(r["type"], int(r["amount"]), int(r["balance"])) for r in rows] == ALICE


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def postgres_history(tmp_path: Path) -> Iterator[tuple[Scenario, dict[str, str]]]:
    with postgres_settings(tmp_path) as settings:
        env = {"DATABASE_URL": POSTGRES_URL, "POSTGRES_SCHEMA": settings.postgres_schema or ""}
        yield write_history(settings, tmp_path), env


@pytest.mark.postgres
def test_verify_on_postgresql(postgres_history: tuple[Scenario, dict[str, str]]) -> None:
    history, env = postgres_history
    out = ok(ledger(history.folder, "verify", **env))
    assert out.splitlines()[0] == (
        f"OK: 2 users, {ENTRIES} entries, {history.events} events replayed; read models match"
    )
    assert not (history.folder / "var" / "sora2.sqlite").exists()  # it really used PostgreSQL
    history_out = ok(ledger(history.folder, "history", "--user", "bob@example.com", **env))
    assert [(r[2], int(r[3]), int(r[4])) for r in history_rows(history_out)] == BOB

    schema = env["POSTGRES_SCHEMA"]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
        db.execute(
            f'UPDATE "{schema}".rm_balances SET balance = balance + 1 WHERE user_id = %s',
            (str(history.alice),),
        )
    result = ledger(history.folder, "verify", **env)
    assert result.returncode == 1
    assert f"rm_balances user {history.alice}: balance is 106 in the read model, 105 in" in (
        result.stdout
    )
