"""/api/orders: the signed-in user's orders for credits."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY
from sora2.adapters.http.controllers.credits import PageNumber, PageSize
from sora2.adapters.http.errors import documented
from sora2.adapters.http.handler_thread import SignedIn
from sora2.adapters.http.payment_answers import payment_answers
from sora2.adapters.http.schemas import IdempotencyKey
from sora2.application.command_ids import keyed_id
from sora2.bootstrap import Sora2


class OrdersController(Controller):
    path = "/api/orders"
    tags = ["Orders"]
    security = BEARER_SECURITY

    @post(
        "/create",
        status_code=201,
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="Place an order for credits (PENDING; amount = credits × CREDIT_PRICE)",
    )
    def create_order(
        self,
        data: JSONBody[schemas.OrderRequest],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Order:
        order_id = keyed_id(user.id, "orders/create", idempotency_key)
        return presenters.order(
            sora2.orders.create(user.id, data.credits, data.payment_method.value, order_id)
        )

    @get(
        "/",
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="The user's orders, newest first",
    )
    def list_orders(
        self,
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        page: PageNumber = 1,
        limit: PageSize = 20,
        status: FromQuery[schemas.OrderStatus | None] = None,
    ) -> schemas.OrderPage:
        result = sora2.orders.list(user.id, status and status.value, page, limit)
        return schemas.OrderPage(
            [presenters.order(r) for r in result.items], **presenters.page_fields(result)
        )

    @get(
        "/{order_id:uuid}",
        sync_to_thread=True,
        responses=documented(400, 401, 404, 429),
        summary="One of the user's orders",
    )
    def get_order(
        self,
        order_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> schemas.Order:
        return presenters.order(sora2.orders.get(user.id, order_id))

    @post(
        "/{order_id:uuid}/pay",
        status_code=200,
        sync_to_thread=True,
        responses={**payment_answers(200), **documented(400, 401, 404, 409, 429, 503)},
        summary="Pay the order: the PAID order (sandbox) or the provider's next step",
        description="Credits are added exactly once, however often payment is confirmed.",
    )
    def pay_order(
        self,
        order_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Payment:
        # run again with its key (its first run's process died): a paid order is the answer
        replay = idempotency_key is not None
        return presenters.payment(sora2.orders.pay(user.id, order_id, replay=replay))

    @post(
        "/{order_id:uuid}/cancel",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        summary="Cancel a PENDING order (→ CANCELLED)",
        description=(
            "Only an unpaid (PENDING) order can be cancelled; any other state answers 409. "
            "A payment that still reaches the provider for a cancelled order is refunded "
            "there and never credited. Unpaid orders also expire by themselves after "
            "`ORDER_EXPIRES_IN` (default 30 minutes)."
        ),
    )
    def cancel_order(
        self,
        order_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> schemas.Order:
        return presenters.order(sora2.orders.cancel(user.id, order_id))
