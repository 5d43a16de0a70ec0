"""Properties of the aggregates under any sequence of commands, refused ones included.

The ledger runs as a hypothesis state machine next to a plain model of what it should
hold; Order and Video run arbitrary command sequences against their state machines.
Every refused command (a DomainError) must record nothing and change nothing, and
replaying the recorded events must rebuild the same aggregate.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sora2.domain.credits.ledger import MAX_ADJUSTMENT, CreditLedger
from sora2.domain.errors import Conflict, DomainError, InsufficientCredits, InvalidInput
from sora2.domain.orders.order import Order
from sora2.domain.videos.video import Video

START = datetime(2025, 1, 1, tzinfo=UTC)

# Few ids, so commands often hit the same video or order twice.
VIDEOS = [UUID(int=n) for n in range(1, 6)]
ORDERS = [UUID(int=n) for n in range(101, 104)]

valid_amounts = st.integers(min_value=1, max_value=60)
invalid_amounts = st.sampled_from([0, -1, -50, True, False, 1.5, 3.0, None, "7"])
amounts = st.one_of(valid_amounts, valid_amounts, valid_amounts, invalid_amounts)
# admins' corrections: mostly takings that may overdraw, some gifts, some nonsense
adjustments = st.one_of(
    st.integers(min_value=-120, max_value=-1),
    st.integers(min_value=-120, max_value=-1),
    st.integers(min_value=1, max_value=60),
    st.sampled_from([0, True, 2.5, None, "5", MAX_ADJUSTMENT + 1, -MAX_ADJUSTMENT - 1]),
)
ADMIN = UUID(int=999)


def run(aggregate: Aggregate, command: Callable[[], Any]) -> tuple[bool, Any]:
    """Run a command; if it is refused, prove it recorded and changed nothing.

    Returns (accepted, the command's result or the error).
    """
    assert aggregate.pending_events == []
    before = copy.deepcopy(vars(aggregate))
    try:
        result = command()
    except DomainError as error:
        assert aggregate.pending_events == [], "a refused command recorded an event"
        assert vars(aggregate) == before, "a refused command changed the aggregate"
        return False, error
    return True, result


def replay(cls: type[Aggregate], events: list[Any]) -> Any:
    rebuilt = project_aggregate(None, events)
    assert type(rebuilt) is cls
    return rebuilt


def is_valid_amount(amount: Any) -> bool:
    return type(amount) is int and amount > 0


# --- the credit ledger ---------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """The ledger against a model: granted credits, settled spending and holds."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = START
        self.user_id = uuid4()
        self.ledger = CreditLedger(user_id=self.user_id, timestamp=self.now())
        self.events: list[Any] = list(self.ledger.collect_events())
        # the model
        self.granted = 0  # rewards and recharges
        self.spent_settled = 0  # reservations of delivered videos
        self.held: dict[UUID, int] = {}
        self.recharged: set[UUID] = set()
        self.reversed: set[UUID] = set()

    def now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    @property
    def model_balance(self) -> int:  # reversals are taken off `granted`
        return self.granted - self.spent_settled - sum(self.held.values())

    def attempt(self, command: Callable[[], Any]) -> tuple[bool, Any]:
        accepted, result = run(self.ledger, command)
        new_events = self.ledger.collect_events()
        self.events.extend(new_events)
        return accepted, result

    # --- commands ----------------------------------------------------------------------

    @rule(amount=amounts)
    def reward(self, amount: Any) -> None:
        accepted, error = self.attempt(lambda: self.ledger.reward(amount, "bonus", self.now()))
        assert accepted == is_valid_amount(amount), error
        if accepted:
            self.granted += amount
        else:
            assert isinstance(error, InvalidInput)

    @rule(order_id=st.sampled_from(ORDERS), amount=amounts)
    def recharge(self, order_id: UUID, amount: Any) -> None:
        accepted, error = self.attempt(lambda: self.ledger.recharge(order_id, amount, self.now()))
        if not is_valid_amount(amount):
            assert isinstance(error, InvalidInput)
        elif order_id in self.recharged:
            assert isinstance(error, Conflict)
        else:
            assert accepted, error
            self.granted += amount
            self.recharged.add(order_id)

    @rule(order_id=st.sampled_from(ORDERS), amount=amounts)
    def reverse(self, order_id: UUID, amount: Any) -> None:
        """A refund takes an order's credits back only while they are unspent: what is
        held for videos not yet final is not in the balance, so it counts as spent."""
        balance = self.model_balance
        accepted, error = self.attempt(lambda: self.ledger.reverse(order_id, amount, self.now()))
        if not is_valid_amount(amount):
            assert isinstance(error, InvalidInput)
        elif order_id not in self.recharged or order_id in self.reversed:
            assert isinstance(error, Conflict)
        elif amount > balance:
            assert isinstance(error, Conflict)
            assert f"{amount - balance} short" in str(error), error
        else:
            assert accepted, error
            self.granted -= amount
            self.reversed.add(order_id)

    @rule(video_id=st.sampled_from(VIDEOS), amount=amounts)
    def reserve(self, video_id: UUID, amount: Any) -> None:
        balance = self.model_balance
        accepted, error = self.attempt(lambda: self.ledger.reserve(video_id, amount, self.now()))
        if not is_valid_amount(amount):
            assert isinstance(error, InvalidInput)
        elif video_id in self.held:  # a second charge for a delivered one: the log refuses
            assert isinstance(error, Conflict)
        elif amount > balance:
            assert isinstance(error, InsufficientCredits)
        else:
            assert accepted, error
            self.held[video_id] = amount

    @rule(amount=adjustments, reason=st.sampled_from(["goodwill", "duplicate bonus", " "]))
    def adjust(self, amount: Any, reason: str) -> None:
        """An admin's correction, either sign: never below zero, whatever is held."""
        balance = self.model_balance
        accepted, error = self.attempt(
            lambda: self.ledger.adjust(amount, ADMIN, reason, self.now())
        )
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_ADJUSTMENT:
            assert isinstance(error, InvalidInput), error
        elif not reason.strip():
            assert isinstance(error, InvalidInput), error
        elif balance + amount < 0:
            assert isinstance(error, Conflict), error
        else:
            assert accepted, error
            self.granted += amount
            assert self.events[-1].admin_id == ADMIN and self.events[-1].reason == reason

    @rule(video_id=st.sampled_from(VIDEOS))
    def refund(self, video_id: UUID) -> None:
        accepted, refunded = self.attempt(lambda: self.ledger.refund(video_id, self.now()))
        assert accepted, refunded
        assert refunded == (video_id in self.held)
        if refunded:
            amount = self.held.pop(video_id)
            assert self.events[-1].amount == amount

    @rule(video_id=st.sampled_from(VIDEOS))
    def settle(self, video_id: UUID) -> None:
        accepted, settled = self.attempt(lambda: self.ledger.settle(video_id, self.now()))
        assert accepted, settled
        assert settled == (video_id in self.held)
        if settled:
            self.spent_settled += self.held.pop(video_id)

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def balance_is_never_negative(self) -> None:
        assert self.ledger.balance >= 0

    @invariant()
    def ledger_matches_the_model(self) -> None:
        assert self.ledger.balance == self.model_balance
        assert self.ledger.held == self.held
        assert self.ledger.recharged_orders == self.recharged
        assert self.ledger.reversed_orders == self.reversed

    @invariant()
    def balance_is_the_sum_of_signed_entries(self) -> None:
        sign = {
            CreditLedger.Rewarded: 1,
            CreditLedger.Recharged: 1,
            CreditLedger.Reserved: -1,
            CreditLedger.Refunded: 1,
            CreditLedger.Reversed: -1,
            CreditLedger.Adjusted: 1,  # its amount is signed already
        }
        total = sum(sign[type(e)] * e.amount for e in self.events if type(e) in sign)
        assert self.ledger.balance == total

    @invariant()
    def each_event_records_the_running_balance(self) -> None:
        running = 0
        for e in self.events:
            if isinstance(e, CreditLedger.Reserved | CreditLedger.Reversed):
                running -= e.amount
            elif isinstance(
                e,
                CreditLedger.Rewarded
                | CreditLedger.Recharged
                | CreditLedger.Refunded
                | CreditLedger.Adjusted,
            ):
                running += e.amount
            else:
                continue
            assert e.balance == running >= 0
            assert e.user_id == self.user_id

    @invariant()
    def replay_rebuilds_the_same_ledger(self) -> None:
        rebuilt = replay(CreditLedger, self.events)
        assert rebuilt.balance == self.ledger.balance
        assert rebuilt.held == self.ledger.held
        assert rebuilt.recharged_orders == self.ledger.recharged_orders
        assert rebuilt.reversed_orders == self.ledger.reversed_orders
        assert rebuilt.version == self.ledger.version == len(self.events)


TestLedgerProperties = LedgerMachine.TestCase
TestLedgerProperties.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- orders ----------------------------------------------------------------------------------

ORDER_COMMANDS = st.lists(
    st.sampled_from(
        ["mark_paid", "mark_failed", "cancel", "expire", "expire_early", "refund", "return"]
    ),
    min_size=1,
    max_size=14,
)
LIFETIME = timedelta(minutes=30)

# which commands each status accepts, and where they lead (None: stays)
ORDER_MOVES: dict[str, dict[str, str | None]] = {
    "PENDING": {
        "mark_paid": "PAID",
        "mark_failed": "FAILED",
        "cancel": "CANCELLED",
        "expire": "CANCELLED",
    },
    # a payment the order cannot take is sent back; the state stays
    "PAID": {"refund": "REFUNDED", "return": None},
    "CANCELLED": {"return": None},
    "FAILED": {"return": None},
    "REFUNDED": {"return": None},
}


def order_command(order: Order, name: str, at: datetime, n: int) -> Callable[[], None]:
    return {
        "mark_paid": lambda: order.mark_paid(f"ref-{at.timestamp()}", at),
        "mark_failed": lambda: order.mark_failed("declined", at),
        "cancel": lambda: order.cancel(at),
        "expire": lambda: order.expire(LIFETIME, order.created_on + LIFETIME + (at - START)),
        "expire_early": lambda: order.expire(LIFETIME, order.created_on + LIFETIME / 2),
        "refund": lambda: order.refund(UUID(int=7), "asked by the customer", at),
        # a payment of its own only while PAID; any other one is returned
        "return": lambda: order.return_payment(
            order.provider_reference if n % 3 == 0 and order.provider_reference else f"late-{n}",
            at,
        ),
    }[name]


@settings(max_examples=300)
@given(commands=ORDER_COMMANDS)
def test_an_order_follows_its_state_machine_and_is_paid_at_most_once(commands: list[str]):
    at = START
    order = Order.place(uuid4(), uuid4(), 50, Decimal("0.10"), "STRIPE", at)
    events = list(order.collect_events())

    for n, name in enumerate(commands):
        at += timedelta(seconds=1)
        was = order.status
        moves = ORDER_MOVES[was]
        # the payment that paid the order is its own: never returned
        own = name == "return" and n % 3 == 0 and order.provider_reference is not None
        accepted, error = run(order, order_command(order, name, at, n))
        events.extend(order.collect_events())
        assert accepted == (name in moves and not own), (was, name, error)
        if accepted:
            assert order.status == (moves[name] or was)
        else:  # refused: never a change of state
            assert isinstance(error, Conflict)
            assert order.status == was

    paid = [e for e in events if isinstance(e, Order.Paid)]
    assert len(paid) <= 1
    assert sum(isinstance(e, Order.Refunded) for e in events) <= len(paid)
    transitions = [e for e in events[1:] if not isinstance(e, Order.PaymentReturned)]
    assert len(transitions) <= 2  # at most paid, then refunded
    returned = [e for e in events if isinstance(e, Order.PaymentReturned)]
    assert len({e.provider_reference for e in returned}) == len(returned)
    assert order.provider_reference not in {e.provider_reference for e in returned}
    assert (order.paid_at is not None) == bool(paid)
    rebuilt = replay(Order, events)
    assert (rebuilt.status, rebuilt.paid_at, rebuilt.version) == (
        order.status,
        order.paid_at,
        order.version,
    )


# --- videos ----------------------------------------------------------------------------------

# (name, progress): progress lives on the job board now; the log only knows 0 and 100
VIDEO_COMMANDS = st.lists(
    st.tuples(
        st.sampled_from(["start", "complete", "fail", "cancel", "delete"]),
        st.one_of(st.sampled_from([-1, 0, 1, 98, 99, 100, 101]), st.integers(-20, 150)),
    ),
    min_size=1,
    max_size=20,
)

# which commands each status accepts, and where they lead (None: stays)
VIDEO_MOVES: dict[str, dict[str, str | None]] = {
    "PENDING": {"start": "PROCESSING", "fail": "FAILED", "cancel": "CANCELLED"},
    "PROCESSING": {
        "complete": "COMPLETED",
        "fail": "FAILED",
        "cancel": "CANCELLED",
    },
    "COMPLETED": {"delete": None},
    "FAILED": {"delete": None},
    "CANCELLED": {"delete": None},
}


def video_command(video: Video, name: str, progress: int, at: datetime) -> Callable[[], None]:
    return {
        "start": lambda: video.start(at),
        "complete": lambda: video.complete("videos/v.mp4", "videos/v.jpg", at),
        "fail": lambda: video.fail("renderer crashed", at),
        "cancel": lambda: video.cancel(at),
        "delete": lambda: video.delete(at),
    }[name]


@settings(max_examples=500)
@given(commands=VIDEO_COMMANDS)
def test_a_video_follows_its_state_machine(commands: list[tuple[str, int]]) -> None:
    at = START
    video = Video.request(uuid4(), uuid4(), "a red fox", 10, "16:9", 1, at)
    events = list(video.collect_events())
    progress_seen = [video.progress]

    for name, progress in commands:
        at += timedelta(seconds=1)
        was = video.status
        moves = VIDEO_MOVES[was]
        accepted, error = run(video, video_command(video, name, progress, at))
        events.extend(video.collect_events())
        assert accepted == (name in moves), (was, name, error)
        if not accepted:
            assert isinstance(error, Conflict)
            continue
        assert video.status == (moves[name] or was)
        if name == "delete":
            assert video.deleted
        progress_seen.append(video.progress)

        if video.status == "COMPLETED":
            assert video.progress == 100
        else:
            assert 0 <= video.progress <= 99

    assert progress_seen == sorted(progress_seen), "progress went backwards"
    assert sum(isinstance(e, Video.Deleted) for e in events) <= 1
    finals = [e for e in events if isinstance(e, Video.Completed | Video.Failed | Video.Cancelled)]
    assert len(finals) <= 1  # no transition out of a final state
    if not any(isinstance(e, Video.Started) for e in events):
        assert not any(isinstance(e, Video.Completed | Video.ProgressReported) for e in events)

    rebuilt = replay(Video, events)
    assert (rebuilt.status, rebuilt.progress, rebuilt.deleted, rebuilt.version) == (
        video.status,
        video.progress,
        video.deleted,
        video.version,
    )
