"""Buying credits: place an order, pay it through a provider, credit it exactly once.

Payment confirmation saves the PAID order and the RECHARGE entry in one atomic write;
both aggregates refuse a second time, so a repeated callback changes nothing. A refund
saves the REFUNDED order and the REVERSAL entry the same way, after the provider gave the
money back. An order nobody paid in time expires (CANCELLED) unless the provider says it
was paid after all; a payment that still arrives for a cancelled or failed order, or a
second payment for a paid one, is sent back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from sora2.application.answers import order_row
from sora2.application.event_log import EventLog, retry_on_conflict
from sora2.application.ports import Clock, PaymentInstructions, PaymentProvider
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.projections.rows import OrderRow, Page
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict, NotFound, Unavailable
from sora2.domain.orders.order import Order

log = logging.getLogger("sora2.orders")


@dataclass(frozen=True)
class PaymentOutcome:
    order: OrderRow
    instructions: PaymentInstructions


class Orders:
    def __init__(
        self,
        log: EventLog,
        views: ReadModelView,
        seen: ReadYourWrites,
        payments: PaymentProvider,
        clock: Clock,
        credit_price: Decimal,
        expires_in: timedelta = timedelta(minutes=30),
    ) -> None:
        self.log = log
        self.views = views
        self.seen = seen
        self.payments = payments
        self.clock = clock
        self.credit_price = credit_price
        self.expires_in = expires_in

    def create(
        self, user_id: UUID, credits: int, payment_method: str, order_id: UUID | None = None
    ) -> OrderRow:
        """`order_id` (a keyed command's, see `command_ids`): if that order exists, the
        command ran before and the order is the answer."""

        def decide() -> tuple[int | None, Order]:
            if order_id is not None and (earlier := self.log.find(Order, order_id)) is not None:
                if earlier.user_id != user_id:
                    raise Conflict("this Idempotency-Key names another request")
                return None, earlier
            now = self.clock.now()
            order = Order.place(
                order_id or uuid4(), user_id, credits, self.credit_price, payment_method, now
            )
            return self.log.commit(order), order

        position, order = retry_on_conflict(decide)  # a rival run of one keyed command
        self.seen.note(user_id, position)
        return order_row(order)

    def list(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[OrderRow]:
        self.seen.wait(user_id)
        return self.views.orders(user_id, status, page, limit)

    def get(self, user_id: UUID, order_id: UUID) -> OrderRow:
        self.seen.wait(user_id)
        row = self.views.order(order_id)
        if row is None or row.user_id != user_id:  # another user's order does not exist for you
            raise NotFound("order not found")
        return row

    def pay(self, user_id: UUID, order_id: UUID, replay: bool = False) -> PaymentOutcome:
        """`replay`: a keyed command run again; an order it already paid is the answer."""
        order = self.log.find(Order, order_id)
        if order is None or order.user_id != user_id:
            raise NotFound("order not found")
        if replay and order.status == "PAID":
            reference = order.provider_reference
            provider = reference.split("-", 1)[0] if reference else order.payment_method.lower()
            return PaymentOutcome(order_row(order), PaymentInstructions(provider, True))
        if order.status != "PENDING":
            order.mark_paid("", self.clock.now())  # raises the right Conflict
        if order.is_due(self.expires_in, self.clock.now()):  # the sweep cancels it soon
            raise Conflict("this order has expired; place a new one")
        instructions = self.payments.start_payment(
            order.id,
            order.amount,
            order.credits,
            order.payment_method,
            order.created_on + self.expires_in,  # the same deadline on every retry
        )
        if instructions.paid:  # the provider settled at once (sandbox)
            self.confirm_payment(order.id, instructions.provider_reference or "")
            order = self.log.load(Order, order_id, "order")
        return PaymentOutcome(order_row(order), instructions)

    def confirm_payment(self, order_id: UUID, provider_reference: str) -> bool:
        """Mark paid and recharge; False (and no change) if it was already paid. A payment
        the order cannot take (it is CANCELLED or FAILED, or was paid through another
        payment) is refunded at the provider instead, never credited."""

        def decide() -> tuple[bool, int | None, Order]:
            order = self.log.load(Order, order_id, "order")
            if order.status != "PENDING":
                return False, None, order
            now = self.clock.now()
            order.mark_paid(provider_reference, now)
            ledger = self.log.load(CreditLedger, CreditLedger.create_id(order.user_id), "ledger")
            if order.id in ledger.recharged_orders:  # read the order just before a rival's save
                return False, None, order
            ledger.recharge(order.id, order.credits, now)
            return True, self.log.commit(order, ledger), order

        changed, position, order = retry_on_conflict(decide)
        if order.takes_no_payment(provider_reference):
            self._return_payment(order, provider_reference)
            return False
        self.seen.note(order.user_id, position)
        return changed

    def _return_payment(self, order: Order, provider_reference: str) -> None:
        """Refund a payment the order cannot take, then record that it was.
        Unavailable (the provider cannot refund now) goes to the caller, whose notify
        then fails, so the provider delivers it again and we try again."""
        if provider_reference in order.returned_payments:
            return
        self.payments.refund(order.id, order.amount, provider_reference)

        def decide() -> int | None:
            current = self.log.load(Order, order.id, "order")
            if provider_reference in current.returned_payments:  # a rival recorded it
                return None
            current.return_payment(provider_reference, self.clock.now())
            return self.log.commit(current)

        self.seen.note(order.user_id, retry_on_conflict(decide))
        log.warning(
            "order %s is %s: payment %s was refunded at the provider, not credited",
            order.id,
            order.status,
            provider_reference,
        )

    def fail_payment(self, order_id: UUID, reason: str) -> bool:
        """The provider says the payment failed for good: a PENDING order becomes FAILED.
        False (no change) for an order in any other state."""

        def decide() -> tuple[int | None, Order]:
            order = self.log.load(Order, order_id, "order")
            if order.status != "PENDING":
                return None, order
            order.mark_failed(reason, self.clock.now())
            return self.log.commit(order), order

        position, order = retry_on_conflict(decide)
        self.seen.note(order.user_id, position)
        return position is not None

    def refund(
        self, order_id: UUID, admin_id: UUID | None = None, reason: str | None = None
    ) -> OrderRow:
        """Give a PAID order's money back and take its credits back: the provider refunds
        first, then REFUNDED and REVERSAL are saved together. Refused (409, nothing
        refunded) unless the user still holds the credits unspent; credits reserved by
        videos not yet final count as spent."""

        def decide() -> tuple[Order, CreditLedger]:
            order = self.log.load(Order, order_id, "order")
            ledger = self.log.load(CreditLedger, CreditLedger.create_id(order.user_id), "ledger")
            now = self.clock.now()
            order.refund(admin_id, reason, now)
            ledger.reverse(order.id, order.credits, now)
            return order, ledger

        decided: tuple[Order, CreditLedger] | None = decide()  # refuses before money moves
        order = decided[0]
        self.payments.refund(order.id, order.amount, order.provider_reference)

        def save() -> tuple[int | None, Order]:
            nonlocal decided
            aggregates, decided = decided or decide(), None
            return self.log.commit(*aggregates), aggregates[0]

        try:
            position, order = retry_on_conflict(save)
        except Conflict as refused:  # spent (or refunded) between the check and the save
            if self.log.load(Order, order_id, "order").status == "REFUNDED":
                raise  # a rival's refund of the same payment won (one refund at the provider)
            log.error(
                "order %s was refunded at the provider but not recorded (%s): reconcile it",
                order_id,
                refused,
            )
            raise
        self.seen.note(order.user_id, position)
        if admin_id is not None:
            self.seen.note(admin_id, position)
        log.info("order %s refunded (%d credits taken back)", order.id, order.credits)
        return order_row(order)

    def reconcile(self, order_id: UUID) -> bool:
        """Ask the provider about a PENDING order whose notify never came; credit it if
        it was paid. True if that credited it."""
        order = self.log.load(Order, order_id, "order")
        if order.status != "PENDING":
            return False
        reference = self.payments.query(order.id, order.amount)
        if reference is None:
            return False
        log.warning("order %s was paid (%s) but its notify never came", order.id, reference)
        return self.confirm_payment(order.id, reference)

    def expire_due(self) -> int:
        """Cancel every PENDING order older than `expires_in` that the provider does not
        know as paid; how many expired. Safe in several processes at once: the order's
        version check lets one expire win and the others find it CANCELLED."""
        now = self.clock.now()
        expired = 0
        for order_id in self.views.pending_orders(now - self.expires_in):
            try:
                if self.reconcile(order_id):
                    continue
                expired += self._expire(order_id, now)
            except Unavailable as e:  # it may be paid: ask again on the next sweep
                log.warning("order %s: cannot ask its provider (%s); not expired yet", order_id, e)
            except Exception:  # one order's trouble never stops the others' expiry
                log.exception("order %s could not be expired; retrying on the next sweep", order_id)
        return expired

    def _expire(self, order_id: UUID, now: datetime) -> int:
        def decide() -> tuple[int | None, Order]:
            order = self.log.load(Order, order_id, "order")
            if not order.is_due(self.expires_in, now):  # paid or cancelled meanwhile
                return None, order
            order.expire(self.expires_in, now)
            return self.log.commit(order), order

        position, order = retry_on_conflict(decide)
        self.seen.note(order.user_id, position)
        return int(position is not None)

    def cancel(self, user_id: UUID, order_id: UUID) -> OrderRow:
        def decide() -> tuple[int | None, Order]:
            order = self.log.find(Order, order_id)
            if order is None or order.user_id != user_id:
                raise NotFound("order not found")
            order.cancel(self.clock.now())
            return self.log.commit(order), order

        position, order = retry_on_conflict(decide)
        self.seen.note(user_id, position)
        return order_row(order)
