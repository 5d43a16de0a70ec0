"""The credit ledger: one per user, the only place a balance changes.

Every change is an event carrying the amount and the balance after it, so the
transaction list and any auditor's replay read the same numbers.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict, InsufficientCredits, InvalidInput


class CreditLedger(Aggregate):
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
        self.held: dict[UUID, int] = {}  # video id -> credits until its outcome
        self.settled: set[UUID] = set()
        self.recharged_orders: set[UUID] = set()

    def reward(self, amount: int, reason: str, timestamp: datetime) -> None:
        _positive(amount)
        self._rewarded(self.user_id, amount, self.balance + amount, reason, timestamp)

    def recharge(self, order_id: UUID, amount: int, timestamp: datetime) -> None:
        _positive(amount)
        if order_id in self.recharged_orders:
            raise Conflict("this order has already been credited")
        self._recharged(self.user_id, order_id, amount, self.balance + amount, timestamp)

    def reserve(self, video_id: UUID, amount: int, timestamp: datetime) -> None:
        _positive(amount)
        if video_id in self.held or video_id in self.settled:
            raise Conflict("credits are already reserved for this video")
        if amount > self.balance:
            raise InsufficientCredits(f"{amount} credits needed, {self.balance} available")
        self._reserved(self.user_id, video_id, amount, self.balance - amount, timestamp)

    def refund(self, video_id: UUID, timestamp: datetime) -> bool:
        """Give back what was reserved for the video; False if nothing is held."""
        if video_id not in self.held:  # a repeated failure report refunds nothing
            return False
        amount = self.held[video_id]
        self._refunded(self.user_id, video_id, amount, self.balance + amount, timestamp)
        return True

    def settle(self, video_id: UUID, timestamp: datetime) -> bool:
        """Make the reservation final; False if nothing is held."""
        if video_id not in self.held:
            return False
        self._settled(self.user_id, video_id, timestamp)
        return True

    @property
    def reserved_total(self) -> int:
        return sum(self.held.values())

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
        self.recharged_orders.add(order_id)

    @event(Reserved)
    def _reserved(
        self, user_id: UUID, video_id: UUID, amount: int, balance: int, timestamp: datetime
    ) -> None:
        self.balance = balance
        self.held[video_id] = amount

    @event(Refunded)
    def _refunded(
        self, user_id: UUID, video_id: UUID, amount: int, balance: int, timestamp: datetime
    ) -> None:
        self.balance = balance
        del self.held[video_id]

    @event(Settled)
    def _settled(self, user_id: UUID, video_id: UUID, timestamp: datetime) -> None:
        del self.held[video_id]
        self.settled.add(video_id)


def _positive(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidInput("a credit amount must be a positive whole number")
