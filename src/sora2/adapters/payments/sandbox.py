"""The development payment provider: every payment succeeds at once."""

from datetime import datetime
from uuid import UUID

from sora2.application.ports import PaymentInstructions


class SandboxPayments:
    def start_payment(
        self,
        order_id: UUID,
        amount: str,
        credits: int,
        method: str,
        expires_at: datetime | None = None,
    ) -> PaymentInstructions:
        return PaymentInstructions(
            provider="sandbox", paid=True, provider_reference=f"sandbox-{order_id}"
        )

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        """No money moved, so none goes back."""

    def query(self, order_id: UUID, amount: str) -> str | None:
        """A sandbox payment is confirmed in the same call that starts it: an order still
        PENDING was never paid."""
        return None
