"""Order lifecycle races on real PostgreSQL: several processes' expiry sweeps, refunds at once.

Two containers share one store, as two `sora2 serve` processes do. Their sweeps expire an
order once; a cancel racing the sweep leaves exactly one ending; concurrent refunds take the
credits back once. `LedgerAudit` then finds the ledger consistent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest

from sora2.application.audit import LedgerAudit
from sora2.bootstrap import Sora2, audit_store, bootstrap
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict
from sora2.domain.orders.order import Order
from tests.conftest import FastHasher
from tests.support.backends import postgres_settings

pytestmark = pytest.mark.postgres
T = TypeVar("T")


class MovableClock:
    def __init__(self) -> None:
        self.current = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Sora2, Sora2, MovableClock]]:
    clock = MovableClock()
    with postgres_settings(tmp_path, ORDER_EXPIRES_IN="30m") as settings:
        one = bootstrap(settings, hasher=FastHasher(), clock=clock)
        two = bootstrap(settings, hasher=FastHasher(), clock=clock)
        try:
            yield one, two, clock
        finally:
            one.close()
            two.close()


def all_at_once(count: int, action: Callable[[int], T]) -> list[T | BaseException]:
    barrier = threading.Barrier(count)

    def run(index: int) -> T | BaseException:
        barrier.wait()
        try:
            return action(index)
        except Exception as error:  # noqa: BLE001 - the test counts outcomes
            return error

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def events_of(sora2: Sora2, order_id: UUID) -> list[Any]:
    return list(sora2.log.events.get(order_id))


def test_sweeps_of_two_processes_expire_each_order_once(pair: Any) -> None:
    one, two, clock = pair
    user = one.accounts.register("ann@example.com", "ann", "password123").user.id
    orders = [one.orders.create(user, 10 + n, "WECHAT").id for n in range(5)]
    paid = two.orders.create(user, 40, "WECHAT").id
    assert two.orders.confirm_payment(paid, "sandbox-paid") is True
    for app in (one, two):
        app.read_models.catch_up()
    assert one.orders.expire_due() == 0  # not due yet
    clock.current += timedelta(minutes=31)

    expired = all_at_once(6, lambda n: (one, two)[n % 2].orders.expire_due())

    assert sum(expired) == len(orders), expired  # type: ignore[arg-type]
    for order_id in orders:
        kinds = [type(e) for e in events_of(one, order_id)]
        assert kinds == [Order.Created, Order.Expired]
    assert one.log.load(Order, paid).status == "PAID"
    assert LedgerAudit(audit_store(one)).verify().ok


def test_a_cancel_racing_the_sweep_ends_the_order_once(pair: Any) -> None:
    one, two, clock = pair
    user = one.accounts.register("ann@example.com", "ann", "password123").user.id
    order_id = one.orders.create(user, 10, "ALIPAY").id
    two.read_models.catch_up()
    clock.current += timedelta(minutes=31)

    outcomes = all_at_once(
        4,
        lambda n: two.orders.expire_due() if n % 2 else one.orders.cancel(user, order_id),
    )

    endings = [
        e for e in events_of(one, order_id) if isinstance(e, Order.Cancelled | Order.Expired)
    ]
    assert len(endings) == 1, outcomes
    assert one.log.load(Order, order_id).status == "CANCELLED"
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, Conflict) for o in refused), refused


def test_concurrent_refunds_take_the_credits_back_once(pair: Any) -> None:
    one, two, _ = pair
    user = one.accounts.register("ann@example.com", "ann", "password123").user.id
    order = one.credits.recharge(user, 100, "STRIPE").order  # sandbox: paid at once
    assert order.status == "PAID"

    outcomes = all_at_once(8, lambda n: (one, two)[n % 2].orders.refund(order.id))

    done = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(done) == 1 and all(isinstance(o, Conflict) for o in refused), outcomes
    ledger = one.log.load(CreditLedger, CreditLedger.create_id(user))
    assert ledger.balance == 10 and ledger.reversed_orders == {order.id}
    one.read_models.catch_up()
    assert LedgerAudit(audit_store(one)).verify().ok
