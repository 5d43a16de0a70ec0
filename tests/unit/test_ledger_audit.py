"""`LedgerAudit` finds every way a ledger can disagree with its videos, orders and views.

Each test writes a consistent history through the services, then appends a hand-made
inconsistent sequence straight to the log (domain methods, or an aggregate's private
event triggers where the domain would rightly refuse) and expects `verify` to name it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from sora2.application.audit import LedgerAudit
from sora2.application.ports import GeneratedVideo
from sora2.bootstrap import Sora2, audit_store, bootstrap
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.orders.order import Order
from sora2.domain.videos.video import Video
from tests.conftest import FastHasher
from tests.support.backends import sqlite_settings

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class TickingClock:
    """Each reading is one minute after the last, so every command has its own instant."""

    def __init__(self) -> None:
        self.current = START

    def now(self) -> datetime:
        self.current += timedelta(minutes=1)
        return self.current


@pytest.fixture
def sora2(tmp_path: Path) -> Iterator[Sora2]:
    app = bootstrap(sqlite_settings(tmp_path), hasher=FastHasher(), clock=TickingClock())
    app.jobs.shutdown()  # the tests drive every video transition themselves
    try:
        yield app
    finally:
        app.close()


def register(sora2: Sora2, name: str) -> UUID:
    return sora2.accounts.register(f"{name}@example.com", name, "password123").user.id


def recharge(sora2: Sora2, user_id: UUID, credits: int) -> UUID:
    order = sora2.orders.create(user_id, credits, "STRIPE")
    assert sora2.orders.confirm_payment(order.id, "ref") is True
    return order.id


def ledger_of(sora2: Sora2, user_id: UUID) -> CreditLedger:
    return sora2.log.load(CreditLedger, CreditLedger.create_id(user_id))


def complete(sora2: Sora2, tmp_path: Path, video_id: UUID) -> None:
    sora2.videos.start_job(video_id)
    (tmp_path / "v.mp4").write_bytes(b"mp4")
    (tmp_path / "t.jpg").write_bytes(b"jpg")
    assert sora2.videos.complete_job(
        video_id, GeneratedVideo(tmp_path / "v.mp4", tmp_path / "t.jpg")
    )


def append(sora2: Sora2, *aggregates: Any) -> None:
    """Save hand-made events and let the read models project them, as the server would."""
    sora2.read_models.wait_for(sora2.log.commit(*aggregates))


def problems(sora2: Sora2) -> list[str]:
    report = LedgerAudit(audit_store(sora2)).verify()
    assert report.ok == (not report.problems)
    return [problem.message for problem in report.problems]


def only(found: list[str], *words: str) -> str:
    """The one problem that mentions all the words."""
    matching = [p for p in found if all(w in p for w in words)]
    assert len(matching) == 1, (words, found)
    return matching[0]


# --- a consistent log -----------------------------------------------------------------------


def test_a_history_written_by_the_services_verifies(sora2: Sora2, tmp_path: Path) -> None:
    alice, bob = register(sora2, "alice"), register(sora2, "bob")
    order = recharge(sora2, alice, 100)
    assert sora2.orders.confirm_payment(order, "again") is False  # a repeated callback
    done = sora2.videos.request(alice, "a cat", 5, "16:9").id
    complete(sora2, tmp_path, done)
    cancelled = sora2.videos.request(alice, "a dog", 10, "16:9").id
    sora2.videos.cancel(alice, cancelled)
    failed = sora2.videos.request(bob, "a cow", 5, "1:1").id
    sora2.videos.start_job(failed)
    assert sora2.videos.fail_job(failed, "boom")
    assert not sora2.videos.fail_job(failed, "boom again")
    running = sora2.videos.request(alice, "a fox", 15, "9:16").id
    sora2.videos.start_job(running)
    sora2.videos.delete(alice, running)  # cancelled first, so refunded

    report = LedgerAudit(audit_store(sora2)).verify()

    assert report.ok, report.problems
    assert (report.users, report.entries) == (2, 10)
    assert report.events == report.log_position == sora2.log.position
    assert report.read_model_position == sora2.log.position
    audit = LedgerAudit(audit_store(sora2))
    assert [(e.type, e.amount, e.balance) for e in audit.history(alice)] == [
        ("REWARD", 10, 10),
        ("RECHARGE", 100, 110),
        ("CONSUME", -5, 105),
        ("CONSUME", -10, 95),
        ("REFUND", 10, 105),
        ("CONSUME", -15, 90),
        ("REFUND", 15, 105),
    ]
    assert [(e.type, e.balance) for e in audit.history(bob)] == [
        ("REWARD", 10),
        ("CONSUME", 5),
        ("REFUND", 10),
    ]


def test_an_empty_log_verifies(sora2: Sora2) -> None:
    report = LedgerAudit(audit_store(sora2)).verify()
    assert report.ok and (report.users, report.entries, report.events) == (0, 0, 0)


def test_small_pages_read_the_same_log_and_views(sora2: Sora2) -> None:
    users = [register(sora2, f"user{i}") for i in range(3)]
    for user_id in users:
        for credits in (3, 4, 5):
            recharge(sora2, user_id, credits)
    whole = LedgerAudit(audit_store(sora2))
    paged = LedgerAudit(audit_store(sora2), batch=2)
    report = paged.verify()
    assert report.ok, report.problems
    assert report.events == whole.verify().events == sora2.log.position
    for user_id in users:
        assert paged.history(user_id) == whole.history(user_id)
        assert [e.balance for e in paged.history(user_id)] == [10, 13, 17, 22]


def test_balance_at_an_instant_is_the_balance_after_the_last_entry_by_then(
    sora2: Sora2,
) -> None:
    alice = register(sora2, "alice")
    recharge(sora2, alice, 40)
    audit = LedgerAudit(audit_store(sora2))
    reward, topup = audit.history(alice)
    assert audit.balance_at(alice, START) == 0
    assert audit.balance_at(alice, reward.created_at) == 10
    assert (
        audit.balance_at(alice, reward.created_at + (topup.created_at - reward.created_at) / 2)
        == 10
    )
    assert audit.balance_at(alice, topup.created_at) == 50
    assert audit.balance_at(alice, topup.created_at.replace(tzinfo=None)) == 50  # naive = UTC
    assert audit.balance_at(uuid4(), topup.created_at) == 0


# --- refunds ----------------------------------------------------------------------------------


def test_a_refund_for_a_video_still_running_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    video = sora2.videos.request(alice, "a cat", 5, "16:9").id
    ledger = ledger_of(sora2, alice)
    ledger.refund(video, sora2.clock.now())  # the video neither failed nor was cancelled
    append(sora2, ledger)

    found = problems(sora2)

    assert found == [
        only(found, str(alice), str(video), "the video is PENDING, not FAILED or CANCELLED")
    ]


def test_a_refund_for_a_completed_video_is_a_problem(sora2: Sora2, tmp_path: Path) -> None:
    alice = register(sora2, "alice")
    video = sora2.videos.request(alice, "a cat", 5, "16:9").id
    complete(sora2, tmp_path, video)
    ledger = ledger_of(sora2, alice)
    ledger._holds[str(video)] = 5  # settled: the domain would refuse, so forge the hold
    ledger._refunded(alice, video, 5, ledger.balance + 5, sora2.clock.now())
    append(sora2, ledger)

    found = problems(sora2)

    assert found == [only(found, str(video), "is COMPLETED, not FAILED or CANCELLED")]


def test_a_second_refund_for_one_cancelled_video_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    video = sora2.videos.request(alice, "a cat", 5, "16:9").id
    sora2.videos.cancel(alice, video)
    ledger = ledger_of(sora2, alice)
    ledger._holds[str(video)] = 5  # already refunded: forge the hold the domain gave back
    ledger._refunded(alice, video, 5, ledger.balance + 5, sora2.clock.now())
    append(sora2, ledger)

    found = problems(sora2)

    assert found == [only(found, f"video {video}: refunded 2 times")]


def test_a_refund_of_another_amount_or_of_a_video_never_charged_is_a_problem(
    sora2: Sora2,
) -> None:
    alice = register(sora2, "alice")
    recharge(sora2, alice, 50)
    video = sora2.videos.request(alice, "a cat", 5, "16:9").id
    ledger = ledger_of(sora2, alice)  # holds the video's 5 credits
    stranger = uuid4()
    ledger._holds[str(stranger)] = 3  # a hold on a video never requested nor charged
    ledger._refunded(alice, video, 7, ledger.balance + 7, sora2.clock.now())
    ledger._refunded(alice, stranger, 3, ledger.balance + 3, sora2.clock.now())
    append(sora2, ledger)
    cancelled = sora2.log.load(Video, video)
    cancelled.cancel(sora2.clock.now())  # now the video is refundable, but not for 7
    append(sora2, cancelled)

    found = problems(sora2)

    only(found, str(video), "refunds 7 but 5 were charged")
    only(found, str(stranger), "never charged to this user")
    only(found, str(stranger), "unknown (never requested), not FAILED or CANCELLED")
    assert len(found) == 3, found


def test_a_failed_video_left_charged_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    video_id = sora2.videos.request(alice, "a cat", 5, "16:9").id
    video = sora2.log.load(Video, video_id)
    video.fail("boom", sora2.clock.now())  # saved without the ledger's refund
    append(sora2, video)

    found = problems(sora2)

    assert found == [only(found, str(alice), str(video_id), "FAILED", "never refunded")]


# --- charges ----------------------------------------------------------------------------------


def test_a_charge_without_its_video_or_at_another_cost_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    recharge(sora2, alice, 50)
    now = sora2.clock.now()
    ghost = uuid4()
    video = Video.request(uuid4(), alice, "a cat", 5, "16:9", 1, now)  # costs 5
    ledger = ledger_of(sora2, alice)
    ledger.reserve(ghost, 4, now)
    ledger.reserve(video.id, 7, now)
    append(sora2, video, ledger)

    found = problems(sora2)

    only(found, str(alice), str(ghost), "no such video was requested")
    only(found, str(video.id), "charges 7 but the video costs 5")
    assert len(found) == 2, found


def test_a_charge_for_another_users_video_or_twice_is_a_problem(sora2: Sora2) -> None:
    alice, bob = register(sora2, "alice"), register(sora2, "bob")
    bobs = sora2.videos.request(bob, "a cat", 5, "16:9").id
    ledger = ledger_of(sora2, alice)
    ledger.reserve(bobs, 5, sora2.clock.now())
    append(sora2, ledger)

    found = problems(sora2)

    only(found, f"user {alice}: CONSUME", str(bobs), f"belongs to user {bob}")
    only(found, f"video {bobs}: charged 2 times")
    assert len(found) == 2, found


def test_a_negative_balance_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    now = sora2.clock.now()
    video = Video.request(uuid4(), alice, "a cat", 20, "16:9", 1, now)
    ledger = ledger_of(sora2, alice)
    ledger._reserved(alice, video.id, 20, ledger.balance - 20, now)  # 10 available
    append(sora2, video, ledger)

    found = problems(sora2)

    assert found == [only(found, str(alice), "balance goes negative (-10)")]


def test_a_recorded_balance_that_is_not_the_sum_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    ledger = ledger_of(sora2, alice)
    ledger._rewarded(alice, 5, 99, "generous", sora2.clock.now())
    append(sora2, ledger)

    found = problems(sora2)

    only(found, str(alice), "balance is 99 in the event, 15 by the log's sum")
    only(found, f"rm_balances user {alice}: balance is 99 in the read model, 15 in the log")
    only(found, "rm_credits entry", "REWARD 5", "balance is 99 in the read model, 15 in the log")
    assert len(found) == 3, found


# --- recharges and orders ---------------------------------------------------------------------


def test_a_recharge_for_an_unpaid_unknown_or_other_order_is_a_problem(sora2: Sora2) -> None:
    alice, bob = register(sora2, "alice"), register(sora2, "bob")
    unpaid = sora2.orders.create(alice, 30, "ALIPAY").id
    bobs = recharge(sora2, bob, 20)
    unknown = uuid4()
    ledger = ledger_of(sora2, alice)
    now = sora2.clock.now()
    ledger.recharge(unpaid, 25, now)
    ledger.recharge(unknown, 5, now)
    ledger.recharge(bobs, 20, now)
    append(sora2, ledger)

    found = problems(sora2)

    only(found, str(unpaid), "credits 25 but the order is for 30")
    only(found, str(unpaid), "never paid")
    only(found, str(unknown), "no such order exists")
    only(found, str(bobs), f"the order belongs to user {bob}")
    only(found, f"order {bobs}: recharged 2 times")
    assert len(found) == 5, found


def test_an_order_paid_twice_is_a_problem(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    order_id = recharge(sora2, alice, 30)
    order = sora2.log.load(Order, order_id)
    order._paid("second callback", sora2.clock.now())  # the domain refuses; forge it
    append(sora2, order)

    found = problems(sora2)

    assert found == [only(found, f"order {order_id}: paid 2 times")]


def test_a_refunded_order_verifies_with_its_reversal(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    order_id = recharge(sora2, alice, 100)
    refunded = sora2.orders.refund(order_id, reason="asked by the customer")
    assert refunded.status == "REFUNDED"

    report = LedgerAudit(audit_store(sora2)).verify()

    assert report.ok, report.problems
    history = LedgerAudit(audit_store(sora2)).history(alice)
    assert [(e.type, e.amount, e.balance, e.reference_id) for e in history] == [
        ("REWARD", 10, 10, None),
        ("RECHARGE", 100, 110, order_id),
        ("REVERSAL", -100, 10, order_id),
    ]


def test_a_reversal_without_its_refund_or_twice_and_a_refund_without_reversal_are_problems(
    sora2: Sora2,
) -> None:
    alice = register(sora2, "alice")
    kept, taken, never = (recharge(sora2, alice, 20) for _ in range(3))
    ledger = ledger_of(sora2, alice)
    now = sora2.clock.now()
    ledger.reverse(kept, 20, now)  # the ledger allows it; the order was never refunded
    ledger._reversed(alice, never, 15, ledger.balance - 15, now)  # forged: another amount
    ledger._reversed(alice, never, 15, ledger.balance - 15, now)  # and twice
    order = sora2.log.load(Order, taken)
    order.refund(None, None, now)  # refunded, but its credits stay
    append(sora2, ledger, order)

    found = problems(sora2)

    only(found, str(kept), "the order was never refunded")
    assert len([p for p in found if str(never) in p and "takes back 15 but 20" in p]) == 2
    assert len([p for p in found if str(never) in p and "never refunded" in p]) == 2
    only(found, f"order {never}: reversed 2 times")
    only(found, str(taken), "REFUNDED but its 20 credits were never taken back")
    assert len(found) == 7, found


# --- read models ------------------------------------------------------------------------------


def test_read_models_that_lost_or_gained_entries_are_named(sora2: Sora2) -> None:
    alice, bob = register(sora2, "alice"), register(sora2, "bob")
    recharge(sora2, alice, 30)
    recharge(sora2, bob, 40)
    with closing(sqlite3.connect(sora2.settings.sqlite_path)) as db, db:
        db.execute("DELETE FROM rm_credits WHERE user_id = ? AND type = 'RECHARGE'", (str(alice),))
        db.execute("DELETE FROM rm_balances WHERE user_id = ?", (str(bob),))

    found = problems(sora2)

    only(
        found, "rm_credits entry", f"(user {alice}, event", "missing from the read model (RECHARGE"
    )
    only(found, f"rm_balances user {bob}: missing from the read model (balance 50)")
    assert len(found) == 2, found


def test_read_models_behind_the_log_are_compared_at_their_own_position(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    order = sora2.orders.create(alice, 30, "STRIPE")
    behind = sora2.log.position
    loaded = sora2.log.load(Order, order.id)
    ledger = ledger_of(sora2, alice)
    loaded.mark_paid("ref", sora2.clock.now())
    ledger.recharge(order.id, 30, sora2.clock.now())
    sora2.log.commit(loaded, ledger)  # no catch-up: the projection lags one commit

    report = LedgerAudit(audit_store(sora2)).verify()

    assert report.ok, report.problems
    assert report.read_model_position == behind < report.log_position
    assert report.entries == 2


class WritesDuringTheAudit:
    """The database while a server writes and projects new events as the audit reads."""

    def __init__(self, sora2: Sora2, write: Any) -> None:
        self.store = audit_store(sora2)
        self.write = write

    def chain_backlog(self) -> Any:
        return self.store.chain_backlog()

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self.store.reading() as reading:
            reading.position_of("anything")  # the snapshot begins with the first read
            self.write()
            yield reading


def test_events_written_while_the_audit_reads_are_not_problems(sora2: Sora2) -> None:
    alice = register(sora2, "alice")
    order = sora2.orders.create(alice, 30, "STRIPE")
    before = sora2.log.position

    def pay() -> None:
        loaded = sora2.log.load(Order, order.id)
        ledger = ledger_of(sora2, alice)
        loaded.mark_paid("ref", sora2.clock.now())
        ledger.recharge(order.id, 30, sora2.clock.now())
        sora2.read_models.wait_for(sora2.log.commit(loaded, ledger))

    report = LedgerAudit(WritesDuringTheAudit(sora2, pay)).verify()  # type: ignore[arg-type]

    assert sora2.log.position > before
    assert report.ok, report.problems
    assert report.read_model_position == report.log_position == before
    after = LedgerAudit(audit_store(sora2)).verify()
    assert after.ok, after.problems
    assert after.read_model_position == after.log_position == sora2.log.position
