"""Stripe Checkout as a PaymentProvider, and the verification of Stripe's signed webhooks.

Paying an order creates a Checkout Session over Stripe's REST API and sends the user to
its hosted page; nothing is credited then. Credits arrive only through the webhook
(`checkout.session.completed`), whose signature `verify_webhook` checks, and
`Orders.confirm_payment` credits an order once however often Stripe delivers the event.
`refund` refunds a session's PaymentIntent (`/v1/refunds`); `query` finds an order's paid
session when its webhook never came (PaymentIntent search by the order id we tag it with).

Three promises shape the code:

* one session per order: every create carries an `Idempotency-Key` made from the order id
  (and the parameters, so a changed amount or URL makes a fresh session instead of a
  Stripe error), so a retried call, ours or the user's, gets the same session back;
* money is never a float: the order's decimal amount becomes Stripe's integer minor units;
* failures the user sees are user-safe (`PaymentProviderError`: 503, try later;
  `PaymentRejected`: 400), and the secret key never reaches a response or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import httpx

from sora2.adapters.payments.http_provider import HttpProvider, credits_label
from sora2.application.ports import PaymentInstructions
from sora2.domain.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 300  # seconds; Stripe's own libraries use the same default

UNAVAILABLE_MESSAGE = "The payment provider is unavailable right now; please try again later."
MISCONFIGURED_MESSAGE = "The payment provider cannot take payments right now; please try later."
TOO_SMALL_MESSAGE = (
    "The amount is below the smallest payment the provider accepts; buy more credits."
)

# Currencies whose minor unit is not the cent (https://docs.stripe.com/currencies).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

_RETRYABLE = {409, 429, 500, 502, 503, 504}  # 409: the same idempotency key is in flight
_SECRETISH = re.compile(r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]+")


class PaymentProviderError(Unavailable):
    """Stripe could not start the payment (down, unreachable, or misconfigured on our side).

    An `Unavailable`, so the HTTP edge answers 503: the user can only try again later.
    The message is safe to show; the details went to the log (without the key).
    """


class PaymentRejected(InvalidInput):
    """Stripe refused this payment for a reason the user can fix (the amount is too small)."""


class AlreadyRefunded(PaymentProviderError):
    """Stripe says the charge was refunded already (by us earlier, or in its dashboard)."""


class WebhookRejected(Exception):
    """A webhook did not prove that Stripe sent it; `reason` says why (safe to answer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def minor_units(amount: str, currency: str = "usd") -> int:
    """The decimal amount ("1.50") in the currency's smallest unit (150), exactly.

    Raises ValueError if the amount is not a positive decimal or has finer precision than
    the currency (0.5 JPY): Stripe would charge something else than the order says.
    """
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {amount!r}") from None
    currency = currency.lower()
    exponent = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    if not value.is_finite() or value <= 0:
        raise ValueError(f"not a positive amount: {amount!r}")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} cannot be charged exactly in {currency.upper()}")
    return int(scaled)


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe's v1 signature: hex HMAC-SHA256 of `"{t}.{payload}"` keyed by the secret."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class StripePayments(HttpProvider):
    """Takes payments through Stripe Checkout; see the module docstring.

    `success_url` and `cancel_url` may contain `{ORDER_ID}` (replaced by the order's id)
    and Stripe's own `{CHECKOUT_SESSION_ID}` (left for Stripe to fill in). `client` lets
    tests or the app share an httpx.Client; when omitted we make (and own) one.
    """

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        success_url: str,
        cancel_url: str,
        api_base: str = "https://api.stripe.com",
        client: httpx.Client | None = None,
        currency: str = "usd",
        *,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        timeout: float = 20.0,
        tolerance: int = DEFAULT_TOLERANCE,
    ) -> None:
        if not secret_key or not webhook_secret:
            raise ValueError("StripePayments needs a secret key and a webhook secret")
        self._secret_key = secret_key
        self._webhook_secret = webhook_secret
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.api_base = api_base.rstrip("/")
        self.currency = currency.lower()
        self.tolerance = tolerance
        super().__init__(client, max_retries, retry_backoff, timeout)

    def __repr__(self) -> str:  # never the keys
        return f"StripePayments(api_base={self.api_base!r}, currency={self.currency!r})"

    # --- PaymentProvider --------------------------------------------------------------

    def start_payment(
        self,
        order_id: UUID,
        amount: str,
        credits: int,
        method: str,
        expires_at: datetime | None = None,  # Checkout Sessions keep Stripe's own 24 hours
    ) -> PaymentInstructions:
        try:
            unit_amount = minor_units(amount, self.currency)
        except ValueError as e:  # CREDIT_PRICE does not fit the currency: ours to fix
            log.error("order %s: %s", order_id, e)
            raise PaymentProviderError(MISCONFIGURED_MESSAGE) from None
        params = self._session_params(order_id, unit_amount, credits)
        session = self._post("/v1/checkout/sessions", params, _idempotency_key(order_id, params))
        session_id, url = session.get("id"), session.get("url")
        if not isinstance(session_id, str) or not isinstance(url, str):
            log.error("Stripe answered a Checkout Session without id or url for order %s", order_id)
            raise PaymentProviderError(UNAVAILABLE_MESSAGE)
        log.info("order %s: Stripe Checkout Session %s", order_id, session_id)
        return PaymentInstructions(
            provider="stripe", paid=False, redirect_url=url, provider_reference=session_id
        )

    def _session_params(self, order_id: UUID, unit_amount: int, credits: int) -> dict[str, str]:
        """The create parameters, form-encoded the way Stripe nests them (`a[b][c]`)."""
        order = str(order_id)
        name = credits_label(credits)
        return {
            "mode": "payment",
            "client_reference_id": order,
            "success_url": self.success_url.replace("{ORDER_ID}", order),
            "cancel_url": self.cancel_url.replace("{ORDER_ID}", order),
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": self.currency,
            "line_items[0][price_data][unit_amount]": str(unit_amount),
            "line_items[0][price_data][product_data][name]": name,
            "metadata[order_id]": order,
            "metadata[credits]": str(credits),
            # on the PaymentIntent too, so refunds and disputes name the order
            "payment_intent_data[metadata][order_id]": order,
        }

    # --- refunds and reconciliation -----------------------------------------------------

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        """Refund the order's payment in full through `/v1/refunds`, against the
        PaymentIntent of its Checkout Session (`provider_reference`, else the session
        found by `query`). One refund per payment: the Idempotency-Key names the
        PaymentIntent, and Stripe's "already refunded" counts as done."""
        session_id = provider_reference or self._paid_session(order_id, amount)
        if session_id is None:
            log.error("order %s: no paid Stripe session to refund", order_id)
            raise PaymentProviderError(UNAVAILABLE_MESSAGE)
        session = self._get(f"/v1/checkout/sessions/{_path_part(session_id)}", {})
        intent = session.get("payment_intent")
        if isinstance(intent, dict):  # expanded
            intent = intent.get("id")
        if not isinstance(intent, str) or not intent:
            log.error("order %s: Stripe session %s has no PaymentIntent", order_id, session_id)
            raise PaymentProviderError(UNAVAILABLE_MESSAGE)
        params = {
            "payment_intent": intent,
            "amount": str(self._minor(order_id, amount)),
            "metadata[order_id]": str(order_id),
        }
        try:
            refund = self._post("/v1/refunds", params, f"sora2-refund-{order_id}-{intent}")
        except AlreadyRefunded:
            log.info("order %s: Stripe PaymentIntent %s was already refunded", order_id, intent)
            return
        log.info("order %s: Stripe refund %s of %s", order_id, refund.get("id"), intent)

    def query(self, order_id: UUID, amount: str) -> str | None:
        """The id of a paid Checkout Session for the order (what its webhook would have
        named), else None: the order's succeeded PaymentIntent (we tag each one with the
        order id), then the Checkout Session that made it."""
        return self._paid_session(order_id, amount)

    def _paid_session(self, order_id: UUID, amount: str) -> str | None:
        expected = self._minor(order_id, amount)
        found = self._get(
            "/v1/payment_intents/search",
            {"query": f"metadata['order_id']:'{order_id}' AND status:'succeeded'"},
        )
        for intent in _list(found):
            if intent.get("amount_received", intent.get("amount")) != expected:
                continue  # not this order's price: a human must look, never credit it
            if str(intent.get("currency", "")).lower() != self.currency:
                continue
            sessions = self._get("/v1/checkout/sessions", {"payment_intent": str(intent["id"])})
            for session in _list(sessions):
                meta = session.get("metadata")
                if (
                    session.get("payment_status") == "paid"
                    and isinstance(meta, dict)
                    and meta.get("order_id") == str(order_id)
                    and isinstance(session.get("id"), str)
                ):
                    return session["id"]
        return None

    def _minor(self, order_id: UUID, amount: str) -> int:
        try:
            return minor_units(amount, self.currency)
        except ValueError as e:
            log.error("order %s: %s", order_id, e)
            raise PaymentProviderError(MISCONFIGURED_MESSAGE) from None

    # --- HTTP ---------------------------------------------------------------------------

    def _post(self, path: str, params: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        """POST with retries on network trouble, 409, 429 and 5xx, always with the same key
        (so a retry after a lost answer returns the first session rather than a second)."""
        return self._request("POST", path, params, {"Idempotency-Key": idempotency_key})

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        return self._request("GET", path, params, {})

    def _request(
        self, method: str, path: str, params: dict[str, str], extra: dict[str, str]
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._secret_key}", **extra}
        form = {"data": params} if method == "POST" else {"params": params}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                r = self._client.request(
                    method, self.api_base + path, headers=headers, timeout=self._timeout, **form
                )
            except httpx.HTTPError as e:  # the message names the URL, never the headers
                log.warning("Stripe %s: %s (attempt %d)", path, type(e).__name__, attempt + 1)
                if last:
                    raise PaymentProviderError(UNAVAILABLE_MESSAGE) from None
                self._sleep(attempt)
                continue
            if r.is_success:
                body = _json_object(r)
                if body is None:
                    log.error(
                        "Stripe %s answered %d with a body that is not JSON", path, r.status_code
                    )
                    raise PaymentProviderError(UNAVAILABLE_MESSAGE)
                return body
            if not last and _should_retry(r):
                log.warning("Stripe %s answered %d (attempt %d)", path, r.status_code, attempt + 1)
                self._sleep(attempt)
                continue
            raise _error_for(path, r)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- webhooks -----------------------------------------------------------------------

    def verify_webhook(
        self, payload: bytes, signature_header: str | None, now: float | None = None
    ) -> dict[str, Any]:
        """The event Stripe sent, once the `Stripe-Signature` header proves Stripe sent it.

        The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (several v1 while a secret
        is being rolled; other schemes are ignored). A v1 must equal the HMAC-SHA256 of
        `"{t}.{payload}"` under the endpoint's secret, and `t` must be within `tolerance`
        of now: an old one is a replay, one far in the future is not Stripe's clock.
        Raises WebhookRejected otherwise.
        """
        if not signature_header:
            raise WebhookRejected("the Stripe-Signature header is missing")
        timestamp, signatures = _parse_signature_header(signature_header)
        now = time.time() if now is None else now
        if timestamp < now - self.tolerance:
            raise WebhookRejected("the signature's timestamp is too old")
        if timestamp > now + self.tolerance:
            raise WebhookRejected("the signature's timestamp is in the future")
        expected = sign(payload, self._webhook_secret, timestamp).encode()
        if not any(hmac.compare_digest(expected, s.encode()) for s in signatures):
            raise WebhookRejected("no signature matches the payload")
        try:
            event = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WebhookRejected("the payload is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise WebhookRejected("the payload is not a Stripe event")
        return event


# --- helpers ---------------------------------------------------------------------------


def _idempotency_key(order_id: UUID, params: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return f"sora2-checkout-{order_id}-{digest}"


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookRejected("the Stripe-Signature header is malformed")
        if key == "t":
            if not value.isascii() or not value.isdigit():
                raise WebhookRejected("the Stripe-Signature header has no valid timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookRejected("the Stripe-Signature header has no timestamp")
    if not signatures:
        raise WebhookRejected("the Stripe-Signature header has no v1 signature")
    return timestamp, signatures


def _list(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a Stripe list or search answer."""
    data = body.get("data")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _path_part(text: str) -> str:
    """An id as one URL path segment (a reference came from outside: no `/` or `..`)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", text):
        raise PaymentProviderError(UNAVAILABLE_MESSAGE)
    return text


def _json_object(r: httpx.Response) -> dict[str, Any] | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _should_retry(r: httpx.Response) -> bool:
    """Stripe says so in `Stripe-Should-Retry` when it knows; else by status."""
    hint = r.headers.get("stripe-should-retry")
    if hint is not None:
        return hint == "true"
    return r.status_code in _RETRYABLE


def _error_for(path: str, r: httpx.Response) -> Exception:
    """The user-safe exception for a failed answer; Stripe's own words go to the log only."""
    error = (_json_object(r) or {}).get("error")
    error = error if isinstance(error, dict) else {}
    code, kind = error.get("code"), error.get("type")
    message = _SECRETISH.sub("[redacted]", str(error.get("message") or ""))[:300]
    if code == "charge_already_refunded":
        return AlreadyRefunded(UNAVAILABLE_MESSAGE)
    if code == "amount_too_small":
        log.warning("Stripe %s refused the amount: %s", path, message)
        return PaymentRejected(TOO_SMALL_MESSAGE)
    if r.status_code >= 500 or r.status_code in _RETRYABLE:
        log.warning("Stripe %s answered %d: %s %s", path, r.status_code, kind, message)
        return PaymentProviderError(UNAVAILABLE_MESSAGE)
    # 401/403 (the key), 400 (our parameters): nothing the user can do, an operator must
    log.error("Stripe %s answered %d: %s %s %s", path, r.status_code, kind, code, message)
    return PaymentProviderError(MISCONFIGURED_MESSAGE)
