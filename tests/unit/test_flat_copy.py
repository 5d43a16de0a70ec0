"""Every aggregate's copy for a command is a deep copy: its state is flat (FlatCopy's rule),
and changing the copy leaves the cached original as it was."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, Snapshot

from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.flat_copy import FlatCopy
from sora2.domain.orders.order import Order
from sora2.domain.users.claim import Claim
from sora2.domain.users.session import Session
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

NOW = datetime(2025, 1, 1, tzinfo=UTC)
IMMUTABLE = (str, int, float, bool, type(None), UUID, datetime, Decimal, bytes)


def used_ledger() -> CreditLedger:
    ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
    ledger.reward(100, "welcome", NOW)
    ledger.recharge(uuid4(), 50, NOW)
    ledger.reserve(uuid4(), 10, NOW)
    ledger.reserve(uuid4(), 20, NOW)
    return ledger


def used_order() -> Order:
    order = Order.place(uuid4(), uuid4(), 10, Decimal("0.10"), "STRIPE", NOW)
    order.mark_paid("pi_1", NOW)
    order.return_payment("pi_2", NOW)
    return order


def used_video() -> Video:
    video = Video.request(uuid4(), uuid4(), "a lighthouse", 5, "16:9", 1, NOW)
    video.start(NOW, "worker-1")
    return video


def used_user() -> User:
    user = User.register(uuid4(), "a@example.com", "alice", "hash", NOW)
    user.change_username("alice2", NOW)
    return user


def used_session() -> Session:
    session = Session(id=uuid4(), user_id=uuid4(), token_id=uuid4(), epoch=0, timestamp=NOW)
    session.rotate(session.token_id, uuid4(), NOW)
    return session


def used_claim() -> Claim:
    return Claim(kind="email", value="a@example.com", owner_id=uuid4(), timestamp=NOW)


MAKERS = [used_ledger, used_order, used_video, used_user, used_session, used_claim]


def members(value: Any) -> list[Any]:
    """The values an attribute holds: itself, or a container's keys and items."""
    if isinstance(value, dict):
        return [*value, *value.values()]
    if isinstance(value, list | set):
        return list(value)
    return [value]


def from_snapshot(aggregate: Aggregate) -> Any:
    return Snapshot.take(aggregate).mutate(None)


@pytest.mark.parametrize("make", MAKERS, ids=lambda make: make.__name__)
@pytest.mark.parametrize("restored", [False, True], ids=["replayed", "from-snapshot"])
def test_an_aggregates_state_is_flat_and_its_copy_equal(make: Any, restored: bool) -> None:
    aggregate = make()
    aggregate.collect_events()
    if restored:
        aggregate = from_snapshot(aggregate)
    assert isinstance(aggregate, FlatCopy)
    for name, value in vars(aggregate).items():
        assert all(isinstance(v, IMMUTABLE) for v in members(value)), f"{name}: {value!r}"
    clone = copy.deepcopy(aggregate)
    assert type(clone) is type(aggregate) and clone is not aggregate
    assert vars(clone) == vars(aggregate)


def test_a_command_on_the_copy_leaves_the_original_ledger_as_it_was() -> None:
    ledger = used_ledger()
    ledger.collect_events()
    before = {k: copy.copy(v) for k, v in vars(ledger).items()}
    clone = copy.deepcopy(ledger)
    clone.reserve(uuid4(), 5, NOW)
    clone.recharge(uuid4(), 7, NOW)
    clone.refund(next(iter(clone.held)), NOW)
    assert len(clone.collect_events()) == 3
    assert vars(ledger) == before
    assert ledger.pending_events == []
