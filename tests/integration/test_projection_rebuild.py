"""The read models equal a fresh fold of the log, and apply each event exactly once.

The log is driven through the services (sign-ups, orders, payments) plus a few direct
ledger commands, then folded here by hand from `select_notifications`; the projected
balances and credit entries must be that fold. Catching up again, feeding an event a
second time, or starting a second process on the same database applies nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from sora2.application.event_log import event_id, retry_on_conflict
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.processor import PositionMoved
from sora2.application.processing.projection import ProjectionProcessor
from sora2.application.projections.read_models import ReadModels
from sora2.bootstrap import Sora2, bootstrap
from sora2.config import Settings
from sora2.domain.credits.ledger import CreditLedger
from tests.conftest import FastHasher

# (entry type, sign, reference attribute) of each ledger event that moves credits
ENTRY_KINDS: dict[type, tuple[str, int, str | None]] = {
    CreditLedger.Rewarded: ("REWARD", 1, None),
    CreditLedger.Recharged: ("RECHARGE", 1, "order_id"),
    CreditLedger.Reserved: ("CONSUME", -1, "video_id"),
    CreditLedger.Refunded: ("REFUND", 1, "video_id"),
}


@dataclass(frozen=True)
class Entry:
    id: UUID
    amount: int
    balance: int
    type: str
    reference_id: UUID | None
    created_at: datetime


@dataclass
class Fold:
    balances: dict[UUID, int]
    entries: dict[UUID, list[Entry]]  # oldest first
    last_position: int


def fold_log(sora2: Sora2) -> Fold:
    """Every user's balance and entries, computed from the raw notification log."""
    balances: dict[UUID, int] = {}
    entries: dict[UUID, list[Entry]] = {}
    notifications = sora2.log.recorder.select_notifications(start=1, limit=10_000)
    for notification in notifications:
        event = sora2.log.mapper.to_domain_event(notification)
        if type(event) not in ENTRY_KINDS:
            continue
        kind, sign, reference = ENTRY_KINDS[type(event)]
        balance = balances[event.user_id] = balances.get(event.user_id, 0) + sign * event.amount
        assert event.balance == balance, "the ledger recorded a balance its entries do not sum to"
        entries.setdefault(event.user_id, []).append(
            Entry(
                event_id(event),
                sign * event.amount,
                balance,
                kind,
                getattr(event, reference) if reference else None,
                event.timestamp,
            )
        )
    return Fold(balances, entries, notifications[-1].id if notifications else 0)


def projected_entries(sora2: Sora2, user_id: UUID) -> list[Entry]:
    page = sora2.views.credits(user_id, None, 1, 1_000)
    assert page.total == len(page.items)
    return [
        Entry(r.id, r.amount, r.balance, r.type, r.reference_id, r.created_at)
        for r in reversed(page.items)  # the view lists newest first
    ]


def assert_read_models_equal_the_fold(sora2: Sora2) -> Fold:
    fold = fold_log(sora2)
    assert sora2.views.all_balances() == fold.balances
    for user_id, entries in fold.entries.items():
        assert projected_entries(sora2, user_id) == entries
        assert sora2.views.balance_of(user_id) == fold.balances[user_id]
    assert sora2.read_models.position == fold.last_position  # skipped events are tracked too
    return fold


def on_ledger(sora2: Sora2, user_id: UUID, command: Callable[[CreditLedger], Any]) -> int | None:
    """Run a command on the user's ledger and save it, as a service would."""

    def decide() -> int | None:
        ledger = sora2.log.load(CreditLedger, CreditLedger.create_id(user_id), "ledger")
        command(ledger)
        return sora2.log.commit(ledger)

    return retry_on_conflict(decide)


def drive_some_business(sora2: Sora2) -> list[UUID]:
    """Sign-ups, orders paid, cancelled and left pending, rewards, a reserve/refund/settle."""
    now = sora2.clock.now
    users = [
        sora2.accounts.register(f"{name}@example.com", name, "password123").user.id
        for name in ("ada", "grace", "linus")
    ]
    ada, grace, linus = users

    paid = sora2.orders.create(ada, 100, "STRIPE")
    sora2.orders.confirm_payment(paid.id, "ref-1")
    sora2.orders.confirm_payment(paid.id, "ref-1")  # a repeated callback credits nothing
    cancelled = sora2.orders.create(ada, 40, "WECHAT")
    sora2.orders.cancel(ada, cancelled.id)
    sora2.orders.create(grace, 25, "ALIPAY")  # left pending
    sora2.credits.recharge(grace, 30, "ALIPAY")  # the sandbox pays at once

    on_ledger(sora2, linus, lambda ledger: ledger.reward(7, "Bug bounty", now()))
    failed, delivered = uuid4(), uuid4()
    on_ledger(sora2, ada, lambda ledger: ledger.reserve(failed, 15, now()))
    on_ledger(sora2, ada, lambda ledger: ledger.reserve(delivered, 20, now()))
    on_ledger(sora2, ada, lambda ledger: ledger.refund(failed, now()))
    on_ledger(sora2, ada, lambda ledger: ledger.settle(delivered, now()))
    return users


@pytest.fixture
def open_app(backend_settings: Settings) -> Iterator[Callable[[], Sora2]]:
    """Start the app on the backend, as many times as asked (each a "process")."""
    apps: list[Sora2] = []

    def start() -> Sora2:
        apps.append(bootstrap(backend_settings, hasher=FastHasher()))
        return apps[-1]

    try:
        yield start
    finally:
        for app in apps:
            app.close()


def test_read_models_equal_a_fold_of_the_log(open_app: Callable[[], Sora2]) -> None:
    sora2 = open_app()
    ada, grace, linus = drive_some_business(sora2)
    sora2.read_models.catch_up()

    fold = assert_read_models_equal_the_fold(sora2)

    bonus = sora2.settings.signup_bonus_credits
    assert fold.balances == {ada: bonus + 100 - 20, grace: bonus + 30, linus: bonus + 7}
    assert [e.type for e in fold.entries[ada]] == [
        "REWARD",
        "RECHARGE",
        "CONSUME",
        "CONSUME",
        "REFUND",
    ]


def test_catching_up_again_applies_nothing(open_app: Callable[[], Sora2]) -> None:
    sora2 = open_app()
    drive_some_business(sora2)
    sora2.read_models.catch_up()
    before = assert_read_models_equal_the_fold(sora2)

    assert sora2.read_models.catch_up() == 0
    assert sora2.read_models.catch_up() == 0
    assert assert_read_models_equal_the_fold(sora2) == before


def test_events_fed_twice_are_refused_and_change_nothing(
    open_app: Callable[[], Sora2],
) -> None:
    """A batch names the position it follows: once the view has moved past it (this
    process, or another one), the same events are refused whole."""
    sora2 = open_app()
    drive_some_business(sora2)
    sora2.read_models.catch_up()
    before = assert_read_models_equal_the_fold(sora2)
    processor = ProjectionProcessor(ReadModels(sora2.views))
    everything = LogReader(sora2.log).read(0, 10_000)
    assert everything[-1].position == before.last_position

    for after, batch in ((0, everything), (0, everything[:1]), (3, everything[3:10])):
        with pytest.raises(PositionMoved):
            processor.process(after, batch)

    assert assert_read_models_equal_the_fold(sora2) == before


def test_a_second_process_sees_the_same_read_models(open_app: Callable[[], Sora2]) -> None:
    first = open_app()
    users = drive_some_business(first)
    first.read_models.catch_up()
    fold = assert_read_models_equal_the_fold(first)

    second = open_app()  # a restart, or another worker on the same database
    assert second.read_models.catch_up() == 0
    assert second.read_models.position == first.read_models.position
    assert second.views.all_balances() == fold.balances
    for user_id in users:
        assert projected_entries(second, user_id) == fold.entries[user_id]

    # new events, then both processes race to apply them: each lands exactly once
    now = second.clock.now
    for amount in range(1, 6):
        on_ledger(second, users[0], lambda ledger, a=amount: ledger.reward(a, "Streak", now()))
    applied: list[int] = []
    barrier = threading.Barrier(2)

    def catch_up(app: Sora2) -> None:
        barrier.wait(timeout=10)
        applied.append(app.read_models.catch_up())

    threads = [threading.Thread(target=catch_up, args=(app,)) for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert sum(applied) == 5
    after = assert_read_models_equal_the_fold(first)
    assert after.balances[users[0]] == fold.balances[users[0]] + 15
    assert second.views.all_balances() == after.balances
