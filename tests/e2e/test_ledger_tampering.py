"""Faults planted in the database, each caught by `sora2 ledger verify` (exit 1).

The history is written through the services (`test_ledger_cli.write_history`, plus carol,
who has only her signup reward). Each test then edits the database directly, as someone
with write access to it would — read-model rows of every table, stored events deleted,
edited, made invalid JSON, edited consistently with their read models, with and without
the hash chain rewritten to match — and runs the CLI as an auditor would, in its own
process. Every fault runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sora2.application.ledger_chain import GENESIS, link_hash
from sora2.bootstrap import bootstrap
from tests.conftest import FastHasher
from tests.e2e.test_ledger_cli import Scenario, TickingClock, ledger, write_history
from tests.support.backends import POSTGRES_URL, postgres_settings, sqlite_settings
from tests.support.json_schema import CHECKPOINT_CHANNEL, assert_matches, asyncapi_document, resolve

NATS_URL = "nats://127.0.0.1:4222"


@dataclass
class Planted:
    """A history in a database of its own, and a way to edit it behind the app's back."""

    scenario: Scenario
    carol: uuid.UUID
    env: dict[str, str]  # what the CLI needs to reach this database
    postgres: bool
    schema: str = ""

    # --- SQL against either database --------------------------------------------------------

    def _sql(self, statement: str) -> str:
        p = f'"{self.schema}".' if self.postgres else ""
        events = f"{p}sora2_events" if self.postgres else "stored_events"
        statement = statement.format(p=p, events=events, id=self.id_column)
        return statement.replace("?", "%s") if self.postgres else statement

    @property
    def id_column(self) -> str:
        return "notification_id" if self.postgres else "rowid"

    def execute(self, statement: str, *params: Any) -> int:
        if self.postgres:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
                return db.execute(self._sql(statement), params).rowcount
        with sqlite3.connect(self.scenario.folder / "var" / "sora2.sqlite") as db:
            return db.execute(self._sql(statement), params).rowcount

    def rows(self, statement: str, *params: Any) -> list[tuple]:
        if self.postgres:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
                return list(db.execute(self._sql(statement), params).fetchall())
        with sqlite3.connect(self.scenario.folder / "var" / "sora2.sqlite") as db:
            return list(db.execute(self._sql(statement), params).fetchall())

    # --- events ---------------------------------------------------------------------------

    def positions(self, topic_end: str) -> list[int]:
        rows = self.rows(
            "SELECT {id}, topic FROM {events} ORDER BY {id}",
        )
        return [position for position, topic in rows if topic.endswith(topic_end)]

    def state(self, position: int) -> dict[str, Any]:
        (state,) = self.rows("SELECT state FROM {events} WHERE {id} = ?", position)[0]
        return json.loads(bytes(state))

    def set_state(self, position: int, state: bytes | dict[str, Any]) -> None:
        raw = state if isinstance(state, bytes) else json.dumps(state).encode()
        assert self.execute("UPDATE {events} SET state = ? WHERE {id} = ?", raw, position) == 1

    def delete_event(self, position: int) -> None:
        assert self.execute("DELETE FROM {events} WHERE {id} = ?", position) == 1

    def relink(self) -> None:
        """What a careful forger does after editing events: recompute the whole chain."""
        select = (
            "SELECT notification_id, uuid_send(originator_id), originator_version, topic, state"
            " FROM {events} ORDER BY notification_id"
            if self.postgres
            else "SELECT rowid, originator_id, originator_version, topic, state FROM {events}"
            " ORDER BY rowid"
        )
        links, last, previous = [], GENESIS, 0
        for position, originator, version, topic, state in self.rows(select):
            key = bytes(originator) if self.postgres else bytes.fromhex(originator)
            last = link_hash(last, position, key, version, topic, bytes(state))
            links.append((position, previous, last))
            previous = position
        self.execute("DELETE FROM {p}ledger_chain")
        for link in links:
            self.execute(
                "INSERT INTO {p}ledger_chain (notification_id, previous_id, hash) VALUES (?, ?, ?)",
                *link,
            )

    def verify(self, *args: str, **env: str) -> tuple[int, str, str]:
        result = ledger(self.scenario.folder, "verify", *args, **{**self.env, **env})
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr


def plant_history(folder: Path, settings: Any, env: dict[str, str], schema: str) -> Planted:
    scenario = write_history(settings, folder)
    sora2 = bootstrap(settings, hasher=FastHasher(), clock=TickingClock())
    sora2.jobs.shutdown()
    try:
        carol = sora2.accounts.register("carol@example.com", "carol", "password123").user.id
        sora2.read_models.catch_up()
    finally:
        sora2.close()
    return Planted(scenario, carol, env, bool(schema), schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def planted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Planted]:
    if request.param == "sqlite":
        yield plant_history(tmp_path, sqlite_settings(tmp_path), {}, "")
        return
    with postgres_settings(tmp_path) as settings:
        schema = settings.postgres_schema or ""
        env = {"DATABASE_URL": POSTGRES_URL, "POSTGRES_SCHEMA": schema}
        yield plant_history(tmp_path, settings, env, schema)


def problems(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("PROBLEM: ")]


def caught(planted: Planted, *words: str, args: tuple[str, ...] = (), **env: str) -> list[str]:
    """Verify exits 1 and some PROBLEM line holds all the words; the problem lines."""
    code, out, err = planted.verify(*args, **env)
    found = problems(out)
    assert code == 1, (out, err)
    assert any(all(w in line for w in words) for line in found), (words, found)
    assert [line for line in out.splitlines() if line.startswith("FAILED: ")], out
    return found


# --- a clean log ----------------------------------------------------------------------------


def test_a_clean_log_verifies_with_a_summary_and_a_report(planted: Planted, tmp_path: Path):
    target = tmp_path / "report" / "out.json"
    code, out, err = planted.verify("--report", str(target))

    assert code == 0, (out, err)
    assert problems(out) == []
    assert "FAILED" not in out
    summary = out.splitlines()
    assert any(line.split()[:2] == ["users", "3"] for line in summary), out
    assert any(
        "sum of balances" in line
        and "= 30 rewards + 150 recharges − 35 consumes + 30 refunds" in line
        and "(holds)" in line
        for line in summary
    ), out
    report = json.loads(target.read_text())
    assert report["ok"] is True and report["problems"] == [] and report["problemsByKind"] == {}
    assert report["users"] == 3
    assert report["events"] == report["logPosition"] == report["readModelPosition"]
    assert report["totals"]["CONSUME"] == {"count": 4, "sum": -35}
    assert report["totals"]["REWARD"] == {"count": 3, "sum": 30}
    assert report["balances"]["sum"] == 105 + 60 + 10 == report["balances"]["readModelSum"]
    assert report["chain"]["chainedUpTo"] == report["logPosition"]
    assert report["checkpoint"] is None
    assert report["seconds"] >= 0


# --- read models ----------------------------------------------------------------------------

ReadModelFault = Callable[[Planted], tuple[str, ...]]


def balance_raised(p: Planted) -> tuple[str, ...]:
    assert (
        p.execute(
            "UPDATE {p}rm_balances SET balance = balance + 100 WHERE user_id = ?",
            str(p.scenario.bob),
        )
        == 1
    )
    return (f"rm_balances user {p.scenario.bob}: balance is 160 in the read model, 60 in the log",)


def consume_row_deleted(p: Planted) -> tuple[str, ...]:
    entry = p.scenario.entries[p.scenario.alice][2]
    assert p.execute("DELETE FROM {p}rm_credits WHERE id = ?", str(entry.id)) == 1
    return (f"rm_credits entry {entry.id}", "missing from the read model (CONSUME -5")


def newest_row_deleted(p: Planted) -> tuple[str, ...]:
    (seq,) = p.rows("SELECT MAX(seq) FROM {p}rm_credits")[0]
    assert p.execute("DELETE FROM {p}rm_credits WHERE seq = ?", seq) == 1
    return (f"event {seq}): missing from the read model",)


def fake_recharge_with_its_balance(p: Planted) -> tuple[str, ...]:
    fake = uuid.uuid4()
    p.execute(
        "INSERT INTO {p}rm_credits (seq, id, user_id, amount, balance, type, description,"
        " reference_id, created_at) VALUES (?, ?, ?, 500, 560, 'RECHARGE', 'x', ?, ?)",
        10_000,
        str(fake),
        str(p.scenario.bob),
        str(uuid.uuid4()),
        "2025-05-01T10:00:00+00:00",
    )
    p.execute("UPDATE {p}rm_balances SET balance = 560 WHERE user_id = ?", str(p.scenario.bob))
    return (f"rm_credits entry {fake}", "in the read model, not in the log")


def video_status(p: Planted, old: str, new: str) -> tuple[str, ...]:
    (video_id,) = p.rows("SELECT id FROM {p}rm_videos WHERE status = ?", old)[0]
    assert p.execute("UPDATE {p}rm_videos SET status = ? WHERE id = ?", new, video_id) == 1
    return (f"rm_videos video {video_id}: status is '{new}' in the read model, '{old}' in the log",)


def video_cost_and_file(p: Planted) -> tuple[str, ...]:
    (video_id,) = p.rows("SELECT id FROM {p}rm_videos WHERE status = 'COMPLETED'")[0]
    p.execute("UPDATE {p}rm_videos SET cost = 1, video_key = 'other.mp4' WHERE id = ?", video_id)
    return (f"rm_videos video {video_id}: video_key is 'other.mp4' in the read model",)


def order_status(p: Planted, old: str, new: str) -> tuple[str, ...]:
    (order_id,) = p.rows("SELECT id FROM {p}rm_orders WHERE status = ?", old)[0]
    assert p.execute("UPDATE {p}rm_orders SET status = ? WHERE id = ?", new, order_id) == 1
    return (f"rm_orders order {order_id}: status is '{new}' in the read model, '{old}' in the log",)


def order_amount_credits_paid_at(p: Planted) -> tuple[str, ...]:
    (order_id,) = p.rows("SELECT id FROM {p}rm_orders WHERE status = 'PAID'")[0]
    p.execute(
        "UPDATE {p}rm_orders SET amount = '0.01', credits = 9999, paid_at = NULL WHERE id = ?",
        order_id,
    )
    return (f"rm_orders order {order_id}: credits is 9999 in the read model",)


def user_email_and_role(p: Planted) -> tuple[str, ...]:
    p.execute(
        "UPDATE {p}rm_users SET email = 'mallory@example.com', role = 'ADMIN' WHERE id = ?",
        str(p.scenario.bob),
    )
    return (
        f"rm_users user {p.scenario.bob}: role is 'ADMIN' in the read model, 'USER' in the log",
    )


def session_reopened(p: Planted) -> tuple[str, ...]:
    p.execute("UPDATE {p}rm_sessions SET ended = 1 WHERE user_id = ?", str(p.carol))
    return ("rm_sessions session", "ended is 1 in the read model, 0 in the log")


def user_row_deleted(p: Planted) -> tuple[str, ...]:
    assert p.execute("DELETE FROM {p}rm_users WHERE id = ?", str(p.carol)) == 1
    return (f"rm_users user {p.carol}: missing from the read model",)


READ_MODEL_FAULTS: dict[str, ReadModelFault] = {
    "balance +100": balance_raised,
    "CONSUME row deleted": consume_row_deleted,
    "newest credit row deleted": newest_row_deleted,
    "fake RECHARGE row and its balance": fake_recharge_with_its_balance,
    "video CANCELLED→COMPLETED": lambda p: video_status(p, "CANCELLED", "COMPLETED"),
    "video COMPLETED→FAILED": lambda p: video_status(p, "COMPLETED", "FAILED"),
    "video cost and file": video_cost_and_file,
    "order PENDING→PAID": lambda p: order_status(p, "PENDING", "PAID"),
    "order PAID→PENDING": lambda p: order_status(p, "PAID", "PENDING"),
    "order amount, credits, paidAt": order_amount_credits_paid_at,
    "user email and role": user_email_and_role,
    "user row deleted": user_row_deleted,
    "session ended": session_reopened,
}


@pytest.mark.parametrize("fault", list(READ_MODEL_FAULTS))
def test_a_planted_read_model_fault_is_caught(planted: Planted, fault: str) -> None:
    words = READ_MODEL_FAULTS[fault](planted)
    found = caught(planted, *words)
    assert all(line.endswith("[read-model]") for line in found), found


# --- the stored events --------------------------------------------------------------------


def test_a_recharge_amount_edited_in_its_event_is_caught(planted: Planted) -> None:
    position = planted.positions("CreditLedger.Recharged")[0]
    state = planted.state(position)
    state["amount"] += 900
    planted.set_state(position, state)
    found = caught(planted, f"event {position} (CreditLedger.Recharged) was changed")
    assert any("credits 1000 but the order is for 100" in line for line in found), found


@pytest.mark.parametrize("event", ["CreditLedger.Reserved", "Order.Paid", "Video.Completed"])
def test_a_deleted_event_is_caught(planted: Planted, event: str) -> None:
    position = planted.positions(event)[0]
    planted.delete_event(position)
    found = caught(planted, f"1 event removed from the log: the chain links event {position}")
    if event == "CreditLedger.Reserved":  # the ledger's later events skip its version
        assert any(line.endswith("[sequence]") and "is missing" in line for line in found)
    if event == "Video.Completed":  # its video still shows COMPLETED, and was settled
        assert any("the log has no Completed event for it" in line for line in found), found
        assert any(
            "status is 'COMPLETED' in the read model, 'PROCESSING'" in line for line in found
        )
    if event == "Order.Paid":
        assert any("the order was never paid" in line for line in found), found


def test_the_newest_event_deleted_is_caught(planted: Planted) -> None:
    (last,) = planted.rows("SELECT MAX({id}) FROM {events}")[0]
    planted.delete_event(last)
    caught(planted, f"1 event removed from the log: the chain links event {last}")


def test_an_event_made_invalid_json_is_a_finding_with_its_position(planted: Planted) -> None:
    position = planted.positions("Video.Requested")[1]
    planted.set_state(position, b'{"timestamp": {"_type_": "datetime_iso", "_da')
    found = caught(planted, f"PROBLEM: event {position} (sora2.domain.videos", "[undecodable]")
    assert any("cannot be decoded" in line for line in found)


def test_an_event_added_behind_the_apps_back_is_caught(planted: Planted) -> None:
    position = planted.positions("CreditLedger.Rewarded")[0]
    (originator, topic, state) = planted.rows(
        "SELECT originator_id, topic, state FROM {events} WHERE {id} = ?", position
    )[0]
    planted.execute(
        "INSERT INTO {events} (originator_id, originator_version, topic, state)"
        " VALUES (?, ?, ?, ?)",
        originator,
        1000,
        topic,
        bytes(state),
    )
    found = caught(planted, "not in the chain")
    assert any("jumps from version" in line for line in found), found


def consistent_reward_edit(planted: Planted) -> None:
    """Carol's only entry, her signup reward, raised to 1,000 in the event and in every
    read model that shows it: the ledger's sums and rules all still hold."""
    position = planted.positions("CreditLedger.Rewarded")[-1]
    state = planted.state(position)
    assert state["user_id"]["_data_"] == planted.carol.hex
    state["amount"] = state["balance"] = 1000
    planted.set_state(position, state)
    planted.execute(
        "UPDATE {p}rm_credits SET amount = 1000, balance = 1000 WHERE user_id = ?",
        str(planted.carol),
    )
    planted.execute(
        "UPDATE {p}rm_balances SET balance = 1000 WHERE user_id = ?", str(planted.carol)
    )


def test_a_consistent_edit_of_an_event_and_its_read_models_is_caught_by_the_chain(
    planted: Planted,
) -> None:
    consistent_reward_edit(planted)
    found = caught(planted, "(CreditLedger.Rewarded) was changed after it was stored")
    assert all(line.endswith("[chain]") for line in found), found


def test_without_a_checkpoint_a_rewritten_chain_hides_a_consistent_edit(planted: Planted) -> None:
    """What the chain cannot do alone (docs/ledger.md): who rewrites it, too, goes unseen."""
    consistent_reward_edit(planted)
    planted.relink()
    code, out, err = planted.verify()
    assert code == 0, (out, err)


# --- checkpoints ------------------------------------------------------------------------------


@pytest.fixture
def key() -> dict[str, str]:
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return {"LEDGER_SIGNING_KEY": base64.b64encode(seed).decode()}


def checkpoint(planted: Planted, key: dict[str, str], folder: Path, **env: str) -> Path:
    target = folder / "cp.json"
    result = ledger(
        planted.scenario.folder, "checkpoint", "--output", str(target), **planted.env, **key, **env
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return target


def test_a_checkpoint_proves_the_log_and_catches_a_rewritten_chain(
    planted: Planted, key: dict[str, str], tmp_path: Path
) -> None:
    target = checkpoint(planted, key, tmp_path)
    document = json.loads(target.read_text())
    code, out, err = planted.verify("--against", str(target), **key)
    assert code == 0, (out, err)
    assert f"PROVEN: event {document['checkpoint']['position']:,}" in out

    consistent_reward_edit(planted)
    planted.relink()
    found = caught(planted, "is not the one checkpointed", args=("--against", str(target)), **key)
    assert all(line.endswith("[checkpoint]") for line in found), found


def test_a_checkpoint_catches_a_log_cut_below_it(
    planted: Planted, key: dict[str, str], tmp_path: Path
) -> None:
    target = checkpoint(planted, key, tmp_path)
    (last,) = planted.rows("SELECT MAX({id}) FROM {events}")[0]
    assert planted.positions("Session.Started")[-1] == last  # carol's sign-in
    planted.delete_event(last)
    planted.execute("DELETE FROM {p}ledger_chain WHERE notification_id = ?", last)
    planted.execute("DELETE FROM {p}rm_sessions WHERE user_id = ?", str(planted.carol))
    assert planted.verify()[0] == 0  # the chain alone cannot see its own end cut off
    caught(planted, "the log was cut", args=("--against", str(target)), **key)


def test_a_forged_checkpoint_is_refused(
    planted: Planted, key: dict[str, str], tmp_path: Path
) -> None:
    target = checkpoint(planted, key, tmp_path)
    document = json.loads(target.read_text())
    document["checkpoint"]["position"] -= 1
    target.write_text(json.dumps(document))
    caught(
        planted,
        "is not validly signed by the configured key",
        args=("--against", str(target)),
        **key,
    )

    other = Ed25519PrivateKey.generate().private_bytes_raw()
    forged = checkpoint(planted, {"LEDGER_SIGNING_KEY": base64.b64encode(other).decode()}, tmp_path)
    caught(
        planted,
        "is not validly signed by the configured key",
        args=("--against", str(forged)),
        **key,
    )


def test_checkpoint_needs_its_key_and_verify_a_readable_file(
    planted: Planted, tmp_path: Path
) -> None:
    result = ledger(planted.scenario.folder, "checkpoint", **planted.env)
    assert result.returncode == 2 and "LEDGER_SIGNING_KEY is not set" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = ledger(planted.scenario.folder, "verify", "--against", str(bad), **planted.env)
    assert result.returncode == 2 and "is not a ledger checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.nats
def test_a_checkpoint_is_published_to_jetstream(
    planted: Planted, key: dict[str, str], tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:10]
    stream, prefix = f"C{token}", f"c{token}"
    env = {"NATS_URL": NATS_URL, "NATS_STREAM": stream, "NATS_SUBJECT_PREFIX": prefix}
    try:
        target = checkpoint(planted, key, tmp_path, **env)
        message = asyncio.run(last_message(f"{stream}_CHECKPOINTS"))
        assert message.subject == f"{prefix}-checkpoints.ledger"
        assert json.loads(message.data) == json.loads(target.read_text())
        # as docs/events.asyncapi.yaml describes it to whoever consumes the stream
        document = asyncapi_document()
        channel = document["channels"][CHECKPOINT_CHANNEL]
        assert message.subject == channel["address"].replace("sora2", prefix, 1)
        described = resolve(document, channel["messages"]["ledgerCheckpoint"]["$ref"])
        assert_matches(json.loads(message.data), described["payload"], "ledger.checkpoint")
        headers = resolve(document, described["headers"]["$ref"])
        assert_matches(dict(message.headers or {}), headers, "ledger.checkpoint headers")
    finally:
        asyncio.run(delete_stream(f"{stream}_CHECKPOINTS"))


async def last_message(stream: str) -> Any:
    from nats.aio.client import Client

    nc = Client()
    await nc.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        return await js.get_msg(stream, seq=info.state.last_seq)
    finally:
        await nc.close()


async def delete_stream(stream: str) -> None:
    from nats.aio.client import Client

    nc = Client()
    await nc.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await nc.close()
