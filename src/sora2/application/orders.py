"""Buying credits: place an order, pay it through a provider, credit it exactly once.

Payment confirmation saves the PAID order and the RECHARGE entry in one atomic write;
both aggregates refuse a second time, so a repeated callback changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID, uuid4

from sora2.application.answers import order_row
from sora2.application.event_log import EventLog, retry_on_conflict
from sora2.application.ports import Clock, PaymentInstructions, PaymentProvider
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.projections.rows import OrderRow, Page
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import NotFound
from sora2.domain.orders.order import Order


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
    ) -> None:
        self.log = log
        self.views = views
        self.seen = seen
        self.payments = payments
        self.clock = clock
        self.credit_price = credit_price

    def create(self, user_id: UUID, credits: int, payment_method: str) -> OrderRow:
        order = Order.place(
            uuid4(), user_id, credits, self.credit_price, payment_method, self.clock.now()
        )
        self.seen.note(user_id, self.log.commit(order))
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

    def pay(self, user_id: UUID, order_id: UUID) -> PaymentOutcome:
        order = self.log.find(Order, order_id)
        if order is None or order.user_id != user_id:
            raise NotFound("order not found")
        if order.status != "PENDING":
            order.mark_paid("", self.clock.now())  # raises the right Conflict
        instructions = self.payments.start_payment(
            order.id, order.amount, order.credits, order.payment_method
        )
        if instructions.paid:  # the provider settled at once (sandbox)
            self.confirm_payment(order.id, instructions.provider_reference or "")
            order = self.log.load(Order, order_id, "order")
        return PaymentOutcome(order_row(order), instructions)

    def confirm_payment(self, order_id: UUID, provider_reference: str) -> bool:
        """Mark paid and recharge; False (and no change) if it was already paid."""

        def decide() -> tuple[bool, int | None, UUID]:
            order = self.log.load(Order, order_id, "order")
            if order.status == "PAID":
                return False, None, order.user_id
            now = self.clock.now()
            order.mark_paid(provider_reference, now)
            ledger = self.log.load(CreditLedger, CreditLedger.create_id(order.user_id), "ledger")
            if order.id in ledger.recharged_orders:  # read the order just before a rival's save
                return False, None, order.user_id
            ledger.recharge(order.id, order.credits, now)
            return True, self.log.commit(order, ledger), order.user_id

        changed, position, user_id = retry_on_conflict(decide)
        self.seen.note(user_id, position)
        return changed

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
