"""Credit queries (served from the read models) and the recharge shortcut."""

from __future__ import annotations

from uuid import UUID

from sora2.application.orders import Orders, PaymentOutcome
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.projections.rows import CreditRow, Page
from sora2.application.projections.view import ReadModelView


class Credits:
    def __init__(self, views: ReadModelView, orders: Orders, seen: ReadYourWrites) -> None:
        self.views = views
        self.orders = orders
        self.seen = seen

    def balance(self, user_id: UUID) -> int:
        self.seen.wait(user_id)
        return self.views.balance_of(user_id)

    def transactions(
        self, user_id: UUID, type: str | None, page: int, limit: int
    ) -> Page[CreditRow]:
        self.seen.wait(user_id)
        return self.views.credits(user_id, type, page, limit)

    def recharge(
        self, user_id: UUID, credits: int, payment_method: str, order_id: UUID | None = None
    ) -> PaymentOutcome:
        """Place an order for the credits and pay it at once (`order_id`: a keyed command's,
        so a second run finds the order, paid or not, instead of placing another)."""
        order = self.orders.create(user_id, credits, payment_method, order_id)
        return self.orders.pay(user_id, order.id, replay=order_id is not None)
