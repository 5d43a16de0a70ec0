"""An order to buy credits: created PENDING, then paid exactly once (or failed/cancelled).

    PENDING ─pay→ PAID ─refund→ REFUNDED
       ├─cancel / expire→ CANCELLED
       └─the provider's final failure→ FAILED

A payment that arrives for a CANCELLED or FAILED order, or a second payment for a paid
one, is returned (refunded at the provider, PaymentReturned), never credited.

Every transition is an event; each public method refuses (Conflict) from a state it
cannot leave, so a repeated command records nothing.
"""

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict, InvalidInput
from sora2.domain.flat_copy import FlatCopy
from sora2.domain.text import check_text, scrub_text

PAYMENT_METHODS = ("ALIPAY", "WECHAT", "STRIPE")
MAX_CREDITS_PER_ORDER = 1_000_000
MAX_REASON_LENGTH = 500


class Order(FlatCopy, Aggregate):
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
        """The user cancelled the unpaid order."""

    class Expired(Aggregate.Event):
        """Nobody paid the order in time (ORDER_EXPIRES_IN): it is CANCELLED."""

        reason: str

    class PaymentReturned(Aggregate.Event):
        """A payment the order cannot take (it is CANCELLED or FAILED, or was paid through
        another payment) arrived anyway and was refunded at the provider."""

        provider_reference: str

    class Refunded(Aggregate.Event):
        """The payment went back to the payer; the ledger takes the credits back with it."""

        credits: int
        admin_id: UUID | None  # None: not an admin's decision
        reason: str

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
        self.returned_payments: list[str] = []  # references of payments sent back

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

    def is_due(self, expires_in: timedelta, now: datetime) -> bool:
        """Unpaid for longer than `expires_in`."""
        return self.status == "PENDING" and self.created_on + expires_in <= now

    def expire(self, expires_in: timedelta, timestamp: datetime) -> None:
        if self.status != "PENDING":
            raise Conflict(f"a {self.status} order cannot expire")
        if not self.is_due(expires_in, timestamp):
            raise Conflict("this order has not expired yet")
        self._expired(f"not paid within {_duration(expires_in)}", timestamp)

    def takes_no_payment(self, provider_reference: str) -> bool:
        """A payment with this reference must go back, never be credited: the order was
        cancelled or failed, or it was paid (and maybe refunded) through another payment."""
        if self.status in ("CANCELLED", "FAILED"):
            return True
        return self.status in ("PAID", "REFUNDED") and provider_reference != self.provider_reference

    def return_payment(self, provider_reference: str, timestamp: datetime) -> None:
        """Record that a payment the order cannot take was refunded at the provider."""
        reference = check_text(provider_reference, "providerReference")
        if not self.takes_no_payment(reference):
            raise Conflict(f"this payment for a {self.status} order is not returned")
        if reference in self.returned_payments:
            raise Conflict("this payment has already been returned")
        self._payment_returned(reference, timestamp)

    def refund(self, admin_id: UUID | None, reason: str | None, timestamp: datetime) -> None:
        if self.status == "REFUNDED":
            raise Conflict("this order is already refunded")
        if self.status != "PAID":
            raise Conflict(f"a {self.status} order cannot be refunded")
        text = check_text(reason, "reason", multiline=True).strip() if reason else ""
        if len(text) > MAX_REASON_LENGTH:
            raise InvalidInput(f"reason: at most {MAX_REASON_LENGTH} characters")
        self._refunded(self.credits, admin_id, text or "refunded", timestamp)

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

    @event(Expired)
    def _expired(self, reason: str, timestamp: datetime) -> None:
        self.status = "CANCELLED"

    @event(PaymentReturned)
    def _payment_returned(self, provider_reference: str, timestamp: datetime) -> None:
        self.returned_payments.append(provider_reference)

    @event(Refunded)
    def _refunded(
        self, credits: int, admin_id: UUID | None, reason: str, timestamp: datetime
    ) -> None:
        self.status = "REFUNDED"


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
