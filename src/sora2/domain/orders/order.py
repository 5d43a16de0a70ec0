"""An order to buy credits: created PENDING, then paid exactly once (or failed/cancelled)."""

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict, InvalidInput
from sora2.domain.text import check_text, scrub_text

PAYMENT_METHODS = ("ALIPAY", "WECHAT", "STRIPE")
MAX_CREDITS_PER_ORDER = 1_000_000


class Order(Aggregate):
    class Created(Aggregate.Created):
        user_id: UUID
        credits: int
        amount: str  # decimal money as text, so no float ever touches it
        payment_method: str

    class Paid(Aggregate.Event):
        provider_reference: str

    class Failed(Aggregate.Event):
        reason: str

    class Cancelled(Aggregate.Event):
        pass

    @event(Created)
    def __init__(
        self,
        id: UUID,
        user_id: UUID,
        credits: int,
        amount: str,
        payment_method: str,
        timestamp: datetime,
    ) -> None:
        self.user_id = user_id
        self.credits = credits
        self.amount = amount
        self.payment_method = payment_method
        self.status = "PENDING"
        self.paid_at: datetime | None = None
        self.provider_reference: str | None = None

    @classmethod
    def place(
        cls,
        order_id: UUID,
        user_id: UUID,
        credits: int,
        credit_price: Decimal,
        payment_method: str,
        timestamp: datetime,
    ) -> "Order":
        if isinstance(credits, bool) or not 1 <= credits <= MAX_CREDITS_PER_ORDER:
            raise InvalidInput(f"credits must be between 1 and {MAX_CREDITS_PER_ORDER}")
        if payment_method not in PAYMENT_METHODS:
            raise InvalidInput(f"paymentMethod must be one of {', '.join(PAYMENT_METHODS)}")
        amount = (credit_price * credits).quantize(Decimal("0.01"))
        if amount <= 0:
            raise InvalidInput("the order's amount would round to nothing; buy more credits")
        return cls(
            id=order_id,
            user_id=user_id,
            credits=credits,
            amount=str(amount),
            payment_method=payment_method,
            timestamp=timestamp,
        )

    def mark_paid(self, provider_reference: str, timestamp: datetime) -> None:
        if self.status == "PAID":
            raise Conflict("this order is already paid")
        if self.status != "PENDING":
            raise Conflict(f"a {self.status} order cannot be paid")
        self._paid(check_text(provider_reference, "providerReference"), timestamp)

    def mark_failed(self, reason: str, timestamp: datetime) -> None:
        if self.status != "PENDING":
            raise Conflict(f"a {self.status} order cannot fail")
        self._failed(scrub_text(reason), timestamp)

    def cancel(self, timestamp: datetime) -> None:
        if self.status != "PENDING":
            raise Conflict(f"a {self.status} order cannot be cancelled")
        self._cancelled(timestamp)

    @event(Paid)
    def _paid(self, provider_reference: str, timestamp: datetime) -> None:
        self.status = "PAID"
        self.paid_at = timestamp
        self.provider_reference = provider_reference

    @event(Failed)
    def _failed(self, reason: str, timestamp: datetime) -> None:
        self.status = "FAILED"

    @event(Cancelled)
    def _cancelled(self, timestamp: datetime) -> None:
        self.status = "CANCELLED"
