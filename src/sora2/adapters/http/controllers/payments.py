"""/api/payments: callbacks from payment providers (Stripe's webhook).

Nobody signs in here: the caller proves it is Stripe by signing the raw body. Once it has,
we answer 200 to everything we understood, even events we ignore or orders we do not know,
because any other answer makes Stripe deliver the same event again for days. Only a bad
signature (400) or our own failure (500, so Stripe retries) answers otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import HeaderParameter, RawBody

from sora2.adapters.http.errors import documented
from sora2.adapters.payments.stripe import StripePayments, WebhookRejected, minor_units
from sora2.bootstrap import Sora2
from sora2.domain.errors import Conflict, InvalidInput, NotFound
from sora2.domain.orders.order import Order
from sora2.domain.text import is_clean_text

log = logging.getLogger("sora2.payments")

PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
FAILED_EVENTS = ("checkout.session.async_payment_failed",)  # the bank said no, for good

StripeSignature = Annotated[
    str,
    HeaderParameter(
        name="Stripe-Signature",
        description="`t=<unix seconds>,v1=<hex HMAC-SHA256>`, as Stripe signs every delivery.",
    ),
]


class WebhookReceipt(msgspec.Struct):
    """Stripe only needs a 2xx; the body is for people reading logs."""

    received: bool


@dataclass
class StripeEventOperation(Operation):
    """Documents the body we read raw (the signature covers its exact bytes)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="A Stripe event, byte for byte as Stripe sent it.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["id", "type", "data"],
                        properties={
                            "id": Schema(type=OpenAPIType.STRING, examples=["evt_1"]),
                            "type": Schema(
                                type=OpenAPIType.STRING, examples=["checkout.session.completed"]
                            ),
                            "data": Schema(type=OpenAPIType.OBJECT),
                        },
                    )
                )
            },
        )


class PaymentsController(Controller):
    path = "/api/payments"
    tags = ["Payments"]

    @post(
        "/stripe/webhook",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 404),
        operation_class=StripeEventOperation,
        summary="Stripe's webhook: a paid Checkout Session credits its order, once",
        description=(
            "Called by Stripe, not by clients. The `Stripe-Signature` header must sign the "
            "raw body with the endpoint's secret within 5 minutes, else 400. "
            "`checkout.session.completed` (or `async_payment_succeeded`) with "
            "`payment_status: paid` marks the order in `metadata.order_id` PAID and adds its "
            "credits exactly once, however often Stripe delivers it; a payment for a "
            "CANCELLED or FAILED order, or a second one for a paid order, is refunded at "
            "Stripe instead, never credited. "
            "`checkout.session.async_payment_failed` marks a PENDING order FAILED. "
            "Every other verified "
            "event, and an unknown order, answers 200 so that Stripe stops retrying. "
            "404 when Stripe is not configured on this server."
        ),
    )
    def stripe_webhook(
        self, body: RawBody, sora2: NamedDependency[Sora2], stripe_signature: StripeSignature
    ) -> WebhookReceipt:
        stripe: StripePayments | None = sora2.extras.get("stripe")
        if stripe is None:
            raise NotFound("Stripe payments are not configured on this server")
        try:
            event = stripe.verify_webhook(body, stripe_signature)
        except WebhookRejected as e:
            log.warning("rejected a Stripe webhook: %s", e.reason)
            raise InvalidInput(f"webhook rejected: {e.reason}") from None
        if event["type"] in PAID_EVENTS:
            _credit_paid_session(sora2, event)
        elif event["type"] in FAILED_EVENTS:
            _fail_session(sora2, event)
        else:
            log.debug("ignored Stripe event %s (%s)", event.get("id"), event["type"])
        return WebhookReceipt(received=True)


def _credit_paid_session(sora2: Sora2, event: dict[str, Any]) -> None:
    """Confirm the session's order; log (never raise) what Stripe cannot fix by retrying."""
    data = event.get("data")
    session = data.get("object") if isinstance(data, dict) else None
    if not isinstance(session, dict) or not is_clean_text(session.get("id")):
        log.warning("Stripe event %s carries no Checkout Session", event.get("id"))
        return
    session_id = session["id"]
    if session.get("payment_status") != "paid":  # an async method: its own event follows
        log.info(
            "Stripe session %s completed, payment still %s",
            session_id,
            session.get("payment_status"),
        )
        return
    order_id = _order_id(session)
    if order_id is None:
        log.warning("Stripe session %s names no order of ours", session_id)
        return
    placed = sora2.log.find(Order, order_id)
    if placed is not None and not _pays_for(session, placed, sora2.extras["stripe"]):
        log.error(
            "Stripe session %s paid %s %s, not order %s's %s: not credited, reconcile it",
            session_id,
            session.get("amount_total"),
            session.get("currency"),
            order_id,
            placed.amount,
        )
        return
    try:
        credited = sora2.orders.confirm_payment(order_id, session_id)
    except NotFound:
        log.warning("Stripe session %s was paid for unknown order %s", session_id, order_id)
        return
    except Conflict as e:  # the payment cannot be recorded: the money needs a human
        log.error(
            "Stripe session %s was paid but order %s was not credited (%s): refund or reconcile it",
            session_id,
            order_id,
            e,
        )
        return
    if credited:
        log.info("order %s paid through Stripe session %s", order_id, session_id)
        return
    order = sora2.log.find(Order, order_id)
    if order is not None and order.takes_no_payment(session_id):
        log.warning(
            "Stripe session %s paid %s order %s (through %s): refunded at Stripe, not credited",
            session_id,
            order.status,
            order_id,
            order.provider_reference,
        )
    else:
        log.info("order %s was already paid; Stripe session %s redelivered", order_id, session_id)


def _fail_session(sora2: Sora2, event: dict[str, Any]) -> None:
    data = event.get("data")
    session = data.get("object") if isinstance(data, dict) else None
    order_id = _order_id(session) if isinstance(session, dict) else None
    if order_id is None or sora2.log.find(Order, order_id) is None:
        log.warning("Stripe event %s: a failed payment for no order of ours", event.get("id"))
        return
    if sora2.orders.fail_payment(order_id, "the payment failed at Stripe"):
        log.info("order %s failed: its Stripe payment did not go through", order_id)


def _pays_for(session: dict[str, Any], order: Order, stripe: StripePayments) -> bool:
    """The session charged exactly the order's amount, in our currency."""
    try:
        expected = minor_units(order.amount, stripe.currency)
    except Exception:
        return False
    return (
        session.get("amount_total") == expected
        and str(session.get("currency", "")).lower() == stripe.currency.lower()
    )


def _order_id(session: dict[str, Any]) -> UUID | None:
    """`metadata.order_id`, which we set; `client_reference_id` must not disagree."""
    metadata = session.get("metadata")
    named = metadata.get("order_id") if isinstance(metadata, dict) else None
    reference = session.get("client_reference_id")
    if not isinstance(named, str) or (reference is not None and reference != named):
        return None
    try:
        return UUID(named)
    except ValueError:
        return None
