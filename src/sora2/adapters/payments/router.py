"""Each payment goes to the provider configured for its method (ALIPAY, WECHAT, STRIPE).

In development every method falls back to the sandbox, which pays at once. In production
there is no fallback unless PAYMENTS_SANDBOX=true: a sandbox there would hand out credits.
"""

from __future__ import annotations

from uuid import UUID

from sora2.application.ports import PaymentInstructions, PaymentProvider
from sora2.domain.errors import Unavailable


class PaymentRouter:
    def __init__(
        self, providers: dict[str, PaymentProvider], fallback: PaymentProvider | None
    ) -> None:
        self.providers = providers
        self.fallback = fallback

    def start_payment(
        self, order_id: UUID, amount: str, credits: int, method: str
    ) -> PaymentInstructions:
        provider = self.providers.get(method) or self.fallback
        if provider is None:
            raise Unavailable(f"{method} payments are not available yet")
        return provider.start_payment(order_id, amount, credits, method)
