"""Many writers, one ledger, real PostgreSQL: optimistic concurrency loses no update.

Every writer loads, decides and saves; a writer that lost the race gets a
RecordConflictError and `retry_on_conflict` makes it re-read and decide again. So a
balance that covers N reservations admits exactly N, and a paid order credits once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest

from sora2.application.event_log import retry_on_conflict
from sora2.bootstrap import Sora2, bootstrap
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import InsufficientCredits
from sora2.domain.orders.order import Order
from tests.conftest import FastHasher
from tests.support.backends import postgres_settings

pytestmark = pytest.mark.postgres

T = TypeVar("T")
THREADS = 32
COST = 5


@pytest.fixture
def sora2(tmp_path: Path) -> Iterator[Sora2]:
    # no signup bonus: every credit in these ledgers comes from the test's own order
    with postgres_settings(tmp_path, SIGNUP_BONUS_CREDITS="0") as settings:
        app = bootstrap(settings, hasher=FastHasher())
        try:
            yield app
        finally:
            app.close()


def register(sora2: Sora2, name: str) -> UUID:
    grant = sora2.accounts.register(f"{name}@example.com", name, "password123")
    return grant.user.id


def recharge(sora2: Sora2, user_id: UUID, credits: int) -> None:
    order = sora2.orders.create(user_id, credits, "STRIPE")
    assert sora2.orders.confirm_payment(order.id, "setup") is True


def all_at_once(count: int, action: Callable[[int], T]) -> list[T]:
    """Run action(0..count-1) on `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def ledger_events(sora2: Sora2, user_id: UUID) -> list[Any]:
    return list(sora2.log.events.get(CreditLedger.create_id(user_id)))


@pytest.mark.parametrize("affordable", [1, 12, THREADS - 1])
def test_a_balance_covering_n_reservations_admits_exactly_n(sora2: Sora2, affordable: int) -> None:
    user_id = register(sora2, f"spender{affordable}")
    recharge(sora2, user_id, affordable * COST)
    ledger_id = CreditLedger.create_id(user_id)

    def reserve(_: int) -> str:
        video_id = uuid4()

        def decide() -> int | None:
            ledger = sora2.log.load(CreditLedger, ledger_id, "ledger")
            ledger.reserve(video_id, COST, sora2.clock.now())
            return sora2.log.commit(ledger)

        try:
            retry_on_conflict(decide)
        except InsufficientCredits:
            return "insufficient"
        return "reserved"

    outcomes = Counter(all_at_once(THREADS, reserve))

    assert outcomes == {"reserved": affordable, "insufficient": THREADS - affordable}
    ledger = sora2.log.load(CreditLedger, ledger_id)
    assert ledger.balance == 0
    assert len(ledger.held) == affordable

    events = ledger_events(sora2, user_id)
    reserved = [e for e in events if isinstance(e, CreditLedger.Reserved)]
    assert len(reserved) == affordable  # no lost update, no double spend
    balances = [e.balance for e in events if hasattr(e, "balance")]
    assert balances == [affordable * COST - COST * i for i in range(affordable + 1)]

    sora2.read_models.catch_up()
    assert sora2.views.balance_of(user_id) == 0
    entries = sora2.views.credits(user_id, None, 1, 100)
    assert entries.total == affordable + 1
    assert all(row.balance >= 0 for row in entries.items)
    assert sora2.views.credits(user_id, "CONSUME", 1, 100).total == affordable


def test_concurrent_payment_confirmations_credit_the_order_once(sora2: Sora2) -> None:
    user_id = register(sora2, "payer")
    order = sora2.orders.create(user_id, 77, "ALIPAY")

    def confirm(index: int) -> str:
        changed = sora2.orders.confirm_payment(order.id, f"ref-{index}")
        return "credited" if changed else "already paid"

    outcomes = all_at_once(THREADS, confirm)

    assert outcomes.count("credited") == 1
    assert set(outcomes) <= {"credited", "already paid"}  # a repeat is never an error
    winner = f"ref-{outcomes.index('credited')}"
    ledger = sora2.log.load(CreditLedger, CreditLedger.create_id(user_id))
    assert ledger.balance == 77
    assert ledger.recharged_orders == {order.id}
    recharges = [e for e in ledger_events(sora2, user_id) if isinstance(e, CreditLedger.Recharged)]
    assert [(e.order_id, e.amount) for e in recharges] == [(order.id, 77)]

    sora2.read_models.catch_up()
    assert sora2.views.balance_of(user_id) == 77
    assert sora2.views.credits(user_id, "RECHARGE", 1, 10).total == 1
    row = sora2.views.order(order.id)
    assert row is not None and row.status == "PAID"
    paid = [e for e in sora2.log.events.get(order.id) if isinstance(e, Order.Paid)]
    assert [e.provider_reference for e in paid] == [winner]
