"""Each payment goes to the provider configured for its method (ALIPAY, WECHAT, STRIPE).

In development every method falls back to the sandbox, which pays at once. In production
there is no fallback unless PAYMENTS_SANDBOX=true: a sandbox there would hand out credits.
Refunds and queries name only the order, so `method_of` tells which method it was paid with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from sora2.application.ports import PaymentInstructions, PaymentProvider
from sora2.domain.errors import Unavailable


class PaymentRouter:
    def __init__(
        self,
        providers: dict[str, PaymentProvider],
        fallback: PaymentProvider | None,
        method_of: Callable[[UUID], str] | None = None,
    ) -> None:
        self.providers = providers
        self.fallback = fallback
        self.method_of = method_of

    def start_payment(
        self,
        order_id: UUID,
        amount: str,
        credits: int,
        method: str,
        expires_at: datetime | None = None,
    ) -> PaymentInstructions:
        provider = self._provider(method)
        return provider.start_payment(order_id, amount, credits, method, expires_at)

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        self._provider(self._method(order_id)).refund(order_id, amount, provider_reference)

    def query(self, order_id: UUID, amount: str) -> str | None:
        provider = self.providers.get(self._method(order_id)) or self.fallback
        if provider is None:  # nothing can have been paid through a provider we lack
            return None
        return provider.query(order_id, amount)

    def _provider(self, method: str) -> PaymentProvider:
        provider = self.providers.get(method) or self.fallback
        if provider is None:
            raise Unavailable(f"{method} payments are not available yet")
        return provider

    def _method(self, order_id: UUID) -> str:
        if self.method_of is None:
            raise Unavailable("payments cannot be refunded or queried here")
        return self.method_of(order_id)
