"""/api/credits: balance, transaction history and recharge."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY
from sora2.adapters.http.errors import documented
from sora2.adapters.http.handler_thread import SignedIn
from sora2.adapters.http.payment_answers import payment_answers
from sora2.adapters.http.schemas import IdempotencyKey
from sora2.application.command_ids import keyed_id
from sora2.bootstrap import Sora2

PageNumber = Annotated[int, QueryParameter(ge=1, le=1_000_000, description="1-based page")]
PageSize = Annotated[int, QueryParameter(ge=1, le=100, description="items per page (1-100)")]


class CreditsController(Controller):
    path = "/api/credits"
    tags = ["Credits"]
    security = BEARER_SECURITY

    @get(
        "/balance",
        sync_to_thread=True,
        responses=documented(401, 429),
        summary="The current credit balance",
    )
    def get_balance(self, user: SignedIn, sora2: NamedDependency[Sora2]) -> schemas.Balance:
        return schemas.Balance(sora2.credits.balance(user.id))

    @get(
        "/transactions",
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="Credit entries, newest first; `balance` is the running balance after each",
    )
    def list_transactions(
        self,
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        page: PageNumber = 1,
        limit: PageSize = 20,
        type: FromQuery[schemas.CreditType | None] = None,
    ) -> schemas.CreditPage:
        result = sora2.credits.transactions(user.id, type and type.value, page, limit)
        return schemas.CreditPage(
            [presenters.credit(r) for r in result.items], **presenters.page_fields(result)
        )

    @post(
        "/recharge",
        status_code=201,
        sync_to_thread=True,
        responses={**payment_answers(201), **documented(400, 401, 409, 429, 503)},
        summary="Buy credits: places an order and pays it through the provider",
        description="With the sandbox provider the order is paid and credited at once.",
    )
    def recharge_credits(
        self,
        data: JSONBody[schemas.OrderRequest],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Payment:
        order_id = keyed_id(user.id, "credits/recharge", idempotency_key)
        outcome = sora2.credits.recharge(user.id, data.credits, data.payment_method.value, order_id)
        return presenters.payment(outcome)
