"""`Orders.expire_due`, the sweep's one step: ask the provider first, expire only what it
does not know as paid, and let no single order's trouble stop the others."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from sora2.application.order_expiry import sweep_interval
from sora2.application.ports import PaymentInstructions
from sora2.bootstrap import Sora2, bootstrap
from sora2.domain.errors import Unavailable
from sora2.domain.orders.order import Order
from tests.conftest import FastHasher
from tests.support.backends import sqlite_settings


class Clock:
    def __init__(self) -> None:
        self.current = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


class Provider:
    """Answers `query` as each order's script says."""

    def __init__(self) -> None:
        self.answers: dict[UUID, object] = {}
        self.refunds: list[tuple[UUID, str | None]] = []

    def start_payment(self, order_id, amount, credits, method, expires_at=None):  # noqa: ANN001
        return PaymentInstructions(provider="fake", paid=False)

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        self.refunds.append((order_id, provider_reference))

    def query(self, order_id: UUID, amount: str) -> str | None:
        answer = self.answers.get(order_id)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Sora2, Provider, Clock]]:
    clock, provider = Clock(), Provider()
    app = bootstrap(
        sqlite_settings(tmp_path, ORDER_EXPIRES_IN="30m"),
        hasher=FastHasher(),
        clock=clock,
        payments=provider,
    )
    app.jobs.shutdown()
    try:
        yield app, provider, clock
    finally:
        app.close()


def status(app: Sora2, order_id: UUID) -> str:
    return app.log.load(Order, order_id).status


def test_the_sweep_asks_first_and_one_bad_order_never_stops_the_others(setup) -> None:  # noqa: ANN001
    app, provider, clock = setup
    user = app.accounts.register("ann@example.com", "ann", "password123").user.id
    down, broken, paid, unpaid = (app.orders.create(user, 10, "ALIPAY").id for _ in range(4))
    provider.answers = {
        down: Unavailable("the provider is down"),
        broken: RuntimeError("a bug in an adapter"),
        paid: "trade-42",
    }
    clock.current += timedelta(minutes=29)
    assert app.orders.expire_due() == 0  # nothing is due yet
    assert {status(app, o) for o in (down, broken, paid, unpaid)} == {"PENDING"}

    clock.current += timedelta(minutes=2)
    assert app.orders.expire_due() == 1

    assert status(app, unpaid) == "CANCELLED"
    assert status(app, paid) == "PAID"  # credited, not cancelled
    assert app.log.load(Order, paid).provider_reference == "trade-42"
    assert status(app, down) == status(app, broken) == "PENDING"  # asked again next time

    provider.answers = {}
    assert app.orders.expire_due() == 2
    assert status(app, down) == status(app, broken) == "CANCELLED"
    assert app.orders.expire_due() == 0
    assert provider.refunds == []


def test_the_sweep_interval_follows_the_lifetime_within_bounds() -> None:
    assert sweep_interval(timedelta(seconds=2)) == 0.5
    assert sweep_interval(timedelta(seconds=1)) == 0.5
    assert sweep_interval(timedelta(minutes=2)) == 30
    assert sweep_interval(timedelta(minutes=30)) == 60
