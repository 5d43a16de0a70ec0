"""CreditLedger: the only place a balance changes, one event per change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import RecordConflictError

from sora2.adapters.event_store import sqlite_env
from sora2.application.event_log import EventLog
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict, InsufficientCredits, InvalidInput
from sora2.domain.videos.video import Video

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def new_ledger(balance: int = 0) -> tuple[CreditLedger, UUID]:
    """A fresh ledger, rewarded `balance` credits, with its events collected."""
    user_id = uuid4()
    ledger = CreditLedger(user_id=user_id, timestamp=NOW)
    if balance:
        ledger.reward(balance, "start", NOW)
    ledger.collect_events()
    return ledger, user_id


def only_event(ledger: CreditLedger) -> object:
    events = ledger.collect_events()
    assert len(events) == 1, events
    return events[0]


def test_a_new_ledger_is_empty_and_keyed_by_user() -> None:
    user_id = uuid4()
    ledger = CreditLedger(user_id=user_id, timestamp=NOW)
    assert ledger.id == CreditLedger.create_id(user_id)
    assert CreditLedger.create_id(user_id) == CreditLedger.create_id(user_id)
    assert CreditLedger.create_id(user_id) != CreditLedger.create_id(uuid4())
    assert (ledger.balance, ledger.held, ledger.reserved_total) == (0, {}, 0)


def test_reward_adds_credits() -> None:
    ledger, user_id = new_ledger()
    ledger.reward(10, "Signup bonus", NOW)
    event = only_event(ledger)
    assert isinstance(event, CreditLedger.Rewarded)
    assert (event.user_id, event.amount, event.balance, event.reason) == (
        user_id,
        10,
        10,
        "Signup bonus",
    )
    assert ledger.balance == 10


def test_recharge_credits_an_order_once() -> None:
    ledger, user_id = new_ledger(5)
    order_id = uuid4()
    ledger.recharge(order_id, 100, NOW)
    event = only_event(ledger)
    assert isinstance(event, CreditLedger.Recharged)
    assert (event.user_id, event.order_id, event.amount, event.balance) == (
        user_id,
        order_id,
        100,
        105,
    )
    assert ledger.recharged_orders == {order_id}

    with pytest.raises(Conflict):
        ledger.recharge(order_id, 100, NOW)
    assert ledger.balance == 105
    assert ledger.collect_events() == []

    ledger.recharge(uuid4(), 1, NOW)  # another order is another recharge
    assert ledger.balance == 106


def test_reserve_takes_credits_and_holds_them_for_the_video() -> None:
    ledger, user_id = new_ledger(30)
    video_id = uuid4()
    ledger.reserve(video_id, 20, NOW)
    event = only_event(ledger)
    assert isinstance(event, CreditLedger.Reserved)
    assert (event.user_id, event.video_id, event.amount, event.balance) == (
        user_id,
        video_id,
        20,
        10,
    )
    assert ledger.balance == 10
    assert ledger.held == {video_id: 20}
    assert ledger.reserved_total == 20


def test_reserve_may_spend_the_whole_balance_but_not_more() -> None:
    ledger, _ = new_ledger(10)
    with pytest.raises(InsufficientCredits, match="11 credits needed, 10 available"):
        ledger.reserve(uuid4(), 11, NOW)
    assert ledger.collect_events() == []
    assert (ledger.balance, ledger.held) == (10, {})

    ledger.reserve(uuid4(), 10, NOW)
    assert ledger.balance == 0
    with pytest.raises(InsufficientCredits):
        ledger.reserve(uuid4(), 1, NOW)


def test_reserving_twice_for_one_video_is_a_conflict() -> None:
    ledger, _ = new_ledger(100)
    video_id = uuid4()
    ledger.reserve(video_id, 10, NOW)
    ledger.collect_events()
    with pytest.raises(Conflict):
        ledger.reserve(video_id, 10, NOW)
    assert ledger.collect_events() == []
    assert (ledger.balance, ledger.held) == (90, {video_id: 10})


def test_refund_returns_exactly_the_reserved_amount_once() -> None:
    ledger, user_id = new_ledger(50)
    video_id, other_video = uuid4(), uuid4()
    ledger.reserve(video_id, 15, NOW)
    ledger.reserve(other_video, 5, NOW)
    ledger.collect_events()

    assert ledger.refund(video_id, NOW) is True
    event = only_event(ledger)
    assert isinstance(event, CreditLedger.Refunded)
    assert (event.user_id, event.video_id, event.amount, event.balance) == (
        user_id,
        video_id,
        15,
        45,
    )
    assert ledger.held == {other_video: 5}

    assert ledger.refund(video_id, NOW) is False  # a repeated failure report
    assert ledger.collect_events() == []
    assert ledger.balance == 45


def test_refund_of_a_video_never_reserved_is_a_no_op() -> None:
    ledger, _ = new_ledger(50)
    assert ledger.refund(uuid4(), NOW) is False
    assert ledger.collect_events() == []
    assert ledger.balance == 50


def test_settle_makes_the_reservation_final() -> None:
    ledger, user_id = new_ledger(50)
    video_id = uuid4()
    ledger.reserve(video_id, 20, NOW)
    ledger.collect_events()

    assert ledger.settle(video_id, NOW) is True
    event = only_event(ledger)
    assert isinstance(event, CreditLedger.Settled)
    assert (event.user_id, event.video_id) == (user_id, video_id)
    assert (ledger.balance, ledger.held) == (30, {})

    assert ledger.refund(video_id, NOW) is False
    assert ledger.settle(video_id, NOW) is False
    assert ledger.collect_events() == []
    assert ledger.balance == 30


def test_a_delivered_video_cannot_be_charged_again(tmp_path: Path) -> None:
    """The ledger does not remember delivered videos (its state, and so each load, stays
    small); the log refuses the second charge: a reservation is only saved with the video's
    creation, and the log records one creation per id."""
    log = EventLog(env=sqlite_env(tmp_path / "log.db"))
    user_id = uuid4()
    ledger = CreditLedger(user_id=user_id, timestamp=NOW)
    ledger.reward(50, "start", NOW)
    video = Video.request(uuid4(), user_id, "a cat", 5, "16:9", 2, NOW)
    ledger.reserve(video.id, video.cost, NOW)
    log.commit(video, ledger)
    ledger.settle(video.id, NOW)
    log.commit(ledger)

    again = Video.request(video.id, user_id, "a cat", 5, "16:9", 2, NOW)
    ledger = log.load(CreditLedger, ledger.id)
    ledger.reserve(again.id, again.cost, NOW)
    with pytest.raises(RecordConflictError):
        log.commit(again, ledger)
    stored = log.load(CreditLedger, ledger.id)
    assert (stored.balance, stored.held, stored.version) == (40, {}, 4)


def test_settle_after_refund_does_nothing() -> None:
    ledger, _ = new_ledger(50)
    video_id = uuid4()
    ledger.reserve(video_id, 20, NOW)
    ledger.refund(video_id, NOW)
    ledger.collect_events()
    assert ledger.settle(video_id, NOW) is False
    assert ledger.collect_events() == []
    assert (ledger.balance, ledger.held) == (50, {})


BAD_AMOUNTS = [0, -1, True, False, 1.5, 2.0, "5", None]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
@pytest.mark.parametrize(
    "command",
    [
        lambda ledger, amount: ledger.reward(amount, "bonus", NOW),
        lambda ledger, amount: ledger.recharge(uuid4(), amount, NOW),
        lambda ledger, amount: ledger.reserve(uuid4(), amount, NOW),
    ],
    ids=["reward", "recharge", "reserve"],
)
def test_amounts_must_be_positive_whole_numbers(command, amount) -> None:
    ledger, _ = new_ledger(100)
    with pytest.raises(InvalidInput):
        command(ledger, amount)
    assert ledger.collect_events() == []
    assert (ledger.balance, ledger.held, ledger.recharged_orders) == (100, {}, set())


def test_each_event_carries_the_user_and_the_balance_after_it() -> None:
    user_id = uuid4()
    ledger = CreditLedger(user_id=user_id, timestamp=NOW)
    first, second = uuid4(), uuid4()
    ledger.reward(10, "Signup bonus", NOW)
    ledger.recharge(uuid4(), 100, NOW)
    ledger.reserve(first, 30, NOW)
    ledger.reserve(second, 50, NOW)
    ledger.refund(first, NOW)
    ledger.settle(second, NOW)
    events = ledger.collect_events()

    assert all(e.user_id == user_id for e in events)
    money = [e for e in events if hasattr(e, "balance")]
    assert [(type(e).__name__, e.balance) for e in money] == [
        ("Rewarded", 10),
        ("Recharged", 110),
        ("Reserved", 80),
        ("Reserved", 30),
        ("Refunded", 60),
    ]
    assert ledger.balance == 60
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
