"""A provider's word that an order was paid, checked against the order before it credits.

The notify adapters prove who sent a notice (signatures, app and merchant ids); this
decides whether it pays for the order it names: an order of ours, placed for that method,
for exactly that amount. Only then does `Orders.confirm_payment` credit it, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from sora2.application.event_log import EventLog
from sora2.application.orders import Orders
from sora2.domain.errors import Conflict, InvalidInput
from sora2.domain.orders.order import Order

log = logging.getLogger("sora2.payments")


@dataclass(frozen=True)
class PaidNotice:
    """A verified report from `method`'s provider: `amount` was paid for the order."""

    method: str  # ALIPAY or WECHAT
    order_id: UUID
    amount: str  # decimal, as the provider charged it
    reference: str  # the provider's transaction id


class NoticeRefused(InvalidInput):
    """The notice does not pay for an order of ours; nothing was credited."""


class PaymentNotices:
    def __init__(self, log: EventLog, orders: Orders) -> None:
        self.log = log
        self.orders = orders

    def settle(self, notice: PaidNotice) -> bool:
        """Credit the order the notice pays for; False if it was credited before (a
        redelivery), was cancelled (the payment is refunded at the provider instead), or
        cannot be any more (e.g. FAILED: logged for a human). Unavailable when a refund the
        provider must make cannot be made now: the provider then delivers it again."""
        order = self.log.find(Order, notice.order_id)
        if order is None:
            raise NoticeRefused("the notify names no order of ours")
        if order.payment_method != notice.method:
            raise NoticeRefused(f"the order is not paid with {notice.method}")
        if Decimal(notice.amount) != Decimal(order.amount):
            log.error(
                "%s %s paid %s for order %s of %s: not credited, reconcile it",
                notice.method,
                notice.reference,
                notice.amount,
                order.id,
                order.amount,
            )
            raise NoticeRefused("the amount paid is not the order's")
        try:
            credited = self.orders.confirm_payment(order.id, notice.reference)
        except Conflict as e:  # e.g. cancelled here, paid there: the money needs a human
            log.error(
                "%s %s paid order %s, which was not credited (%s): refund or reconcile it",
                notice.method,
                notice.reference,
                order.id,
                e,
            )
            return False
        if credited:
            log.info("order %s paid through %s %s", order.id, notice.method, notice.reference)
            return True
        paid = self.log.find(Order, order.id)
        if paid is not None and paid.status == "CANCELLED":  # confirm_payment sent it back
            log.info(
                "%s %s paid cancelled order %s: refunded", notice.method, notice.reference, order.id
            )
        elif paid is not None and paid.provider_reference != notice.reference:  # charged twice
            log.error(
                "order %s was already paid through %s; %s %s was paid too: refund it",
                order.id,
                paid.provider_reference,
                notice.method,
                notice.reference,
            )
        return False
