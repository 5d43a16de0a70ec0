"""The credit ledger: one per user, the only place a balance changes.

Every change is an event carrying the amount and the balance after it, so the
transaction list and any auditor's replay read the same numbers.

The ledger remembers only what its rules read: the balance, the credits held for videos
not yet delivered or refunded (a few), the orders it has credited (one per purchase) and
those whose credits a refund took back.
A delivered video's id is not kept: it cannot be charged again, because a reservation is
only ever saved together with the creation of its video (`Videos.request`), and the log
records one creation per id. So the state, and the snapshot every load starts from, stays
small however many videos the user makes. It is JSON-shaped (text keys, lists, no sets):
snapshots store it through the log's JSON transcoder as it is.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict, InsufficientCredits, InvalidInput
from sora2.domain.flat_copy import FlatCopy

MAX_ADJUSTMENT = 1_000_000  # credits one adjustment may move, either way


class CreditLedger(FlatCopy, Aggregate):
    class Opened(Aggregate.Created):
        user_id: UUID

    class Rewarded(Aggregate.Event):
        user_id: UUID
        amount: int
        balance: int
        reason: str

    class Recharged(Aggregate.Event):
        user_id: UUID
        order_id: UUID
        amount: int
        balance: int

    class Reserved(Aggregate.Event):
        """Credits taken for a video when it is requested: the CONSUME entry."""

        user_id: UUID
        video_id: UUID
        amount: int
        balance: int

    class Refunded(Aggregate.Event):
        user_id: UUID
        video_id: UUID
        amount: int
        balance: int

    class Reversed(Aggregate.Event):
        """A refunded order's credits taken back: the REVERSAL entry (amount is positive
        here, the entry's signed amount is -amount)."""

        user_id: UUID
        order_id: UUID
        amount: int
        balance: int

    class Adjusted(Aggregate.Event):
        """An admin's correction, either sign: the ADJUSTMENT entry."""

        user_id: UUID
        amount: int  # signed
        balance: int
        admin_id: UUID
        reason: str

    class Settled(Aggregate.Event):
        """The video was delivered: its reservation can no longer be refunded."""

        user_id: UUID
        video_id: UUID

    @staticmethod
    def create_id(user_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/credit-ledgers/{user_id}")

    @event(Opened)
    def __init__(self, user_id: UUID, timestamp: datetime) -> None:
        self.user_id = user_id
        self.balance = 0
        # str(video id) -> credits until its outcome (JSON keys are text)
        self._holds: dict[str, int] = {}
        self._credited_orders: list[str] = []  # str(order id) of each order recharged
        self._reversed_orders: list[str] = []  # str(order id) of each order reversed

    def reward(self, amount: int, reason: str, timestamp: datetime) -> None:
        _positive(amount)
        self._rewarded(self.user_id, amount, self.balance + amount, reason, timestamp)

    def recharge(self, order_id: UUID, amount: int, timestamp: datetime) -> None:
        _positive(amount)
        if str(order_id) in self._credited_orders:
            raise Conflict("this order has already been credited")
        self._recharged(self.user_id, order_id, amount, self.balance + amount, timestamp)

    def reverse(self, order_id: UUID, amount: int, timestamp: datetime) -> None:
        """Take a refunded order's credits back, only while the user still holds them
        unspent: credits held for a video not yet final count as spent (they are not in
        the balance), so the balance never goes below zero."""
        _positive(amount)
        if str(order_id) not in self._credited_orders:
            raise Conflict("this order was never credited, so there is nothing to take back")
        if str(order_id) in self._reversals:
            raise Conflict("this order's credits have already been taken back")
        if amount > self.balance:
            raise Conflict(self.shortfall(amount))
        self._reversed(self.user_id, order_id, amount, self.balance - amount, timestamp)

    def shortfall(self, amount: int) -> str:
        """Why `amount` credits cannot be taken back (the message a refund refuses with)."""
        held = self.reserved_total
        return (
            f"the order's {amount} credits cannot be taken back: the user holds only "
            f"{self.balance} unspent"
            + (f" ({held} more are reserved by videos in progress)" if held else "")
            + f", {amount - self.balance} short"
        )

    def adjust(self, amount: int, admin_id: UUID, reason: str, timestamp: datetime) -> None:
        """Add (or, negative, take) credits on an admin's word; never below zero."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise InvalidInput("an adjustment must be a non-zero whole number of credits")
        if abs(amount) > MAX_ADJUSTMENT:
            raise InvalidInput(f"an adjustment can move at most {MAX_ADJUSTMENT:,} credits")
        if not reason.strip():
            raise InvalidInput("an adjustment needs a reason")
        if self.balance + amount < 0:
            raise Conflict(
                f"the adjustment would take the balance below zero ({self.balance} available)"
            )
        self._adjusted(self.user_id, amount, self.balance + amount, admin_id, reason, timestamp)

    def reserve(self, video_id: UUID, amount: int, timestamp: datetime) -> None:
        _positive(amount)
        if str(video_id) in self._holds:
            raise Conflict("credits are already reserved for this video")
        if amount > self.balance:
            raise InsufficientCredits(f"{amount} credits needed, {self.balance} available")
        self._reserved(self.user_id, video_id, amount, self.balance - amount, timestamp)

    def refund(self, video_id: UUID, timestamp: datetime) -> bool:
        """Give back what was reserved for the video; False if nothing is held."""
        amount = self._holds.get(str(video_id))
        if amount is None:  # a repeated failure report refunds nothing
            return False
        self._refunded(self.user_id, video_id, amount, self.balance + amount, timestamp)
        return True

    def settle(self, video_id: UUID, timestamp: datetime) -> bool:
        """Make the reservation final; False if nothing is held."""
        if str(video_id) not in self._holds:
            return False
        self._settled(self.user_id, video_id, timestamp)
        return True

    @property
    def held(self) -> dict[UUID, int]:
        """Video id -> the credits reserved for it until it is delivered or refunded."""
        return {UUID(video_id): amount for video_id, amount in self._holds.items()}

    @property
    def recharged_orders(self) -> frozenset[UUID]:
        return frozenset(UUID(order_id) for order_id in self._credited_orders)

    @property
    def reversed_orders(self) -> frozenset[UUID]:
        return frozenset(UUID(order_id) for order_id in self._reversals)

    @property
    def _reversals(self) -> list[str]:
        """str(order id) of each order whose credits were taken back (absent from the
        snapshots of ledgers that had none)."""
        return self.__dict__.setdefault("_reversed_orders", [])

    @property
    def reserved_total(self) -> int:
        return sum(self._holds.values())

    @event(Rewarded)
    def _rewarded(
        self, user_id: UUID, amount: int, balance: int, reason: str, timestamp: datetime
    ) -> None:
        self.balance = balance

    @event(Recharged)
    def _recharged(
        self, user_id: UUID, order_id: UUID, amount: int, balance: int, timestamp: datetime
    ) -> None:
        self.balance = balance
        self._credited_orders.append(str(order_id))

    @event(Reserved)
    def _reserved(
        self, user_id: UUID, video_id: UUID, amount: int, balance: int, timestamp: datetime
    ) -> None:
        self.balance = balance
        self._holds[str(video_id)] = amount

    @event(Refunded)
    def _refunded(
        self, user_id: UUID, video_id: UUID, amount: int, balance: int, timestamp: datetime
    ) -> None:
        self.balance = balance
        del self._holds[str(video_id)]

    @event(Reversed)
    def _reversed(
        self, user_id: UUID, order_id: UUID, amount: int, balance: int, timestamp: datetime
    ) -> None:
        self.balance = balance
        self._reversals.append(str(order_id))

    @event(Adjusted)
    def _adjusted(
        self,
        user_id: UUID,
        amount: int,
        balance: int,
        admin_id: UUID,
        reason: str,
        timestamp: datetime,
    ) -> None:
        self.balance = balance

    @event(Settled)
    def _settled(self, user_id: UUID, video_id: UUID, timestamp: datetime) -> None:
        del self._holds[str(video_id)]


def _positive(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidInput("a credit amount must be a positive whole number")
