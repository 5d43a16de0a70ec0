"""A fake of Stripe's API over real HTTP, and Stripe's signing.

Checkout Sessions (`POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}`, the list
by `payment_intent`), PaymentIntent search by `metadata['order_id']` and `POST /v1/refunds`.
`complete(session_id)` pays a session as a customer would (a succeeded PaymentIntent
tagged with the session's `payment_intent_data[metadata]`); no webhook is sent by it.

StripePayments is tested against this instead of mocks so that auth, form encoding,
idempotency keys, status codes and error bodies all cross a real socket. Like Stripe:

* a wrong `Authorization` (Bearer or Basic) gets 401, echoing the key it was given (as
  Stripe shows a masked one), so tests can prove the client never repeats it;
* the form's `a[b][c]` keys are nested back into objects; a missing or invalid parameter
  gets 400 `invalid_request_error`; an amount under 50 cents gets `amount_too_small`;
* the same `Idempotency-Key` replays the first answer (with `Idempotent-Replayed: true`);
  the same key with other parameters gets 400 `idempotency_error`;
* `fail_next(n, status)`: the next n requests answer `status` before any of that happens
  (as a load balancer would, so nothing is saved under the key).

`signed_event()` signs a payload as Stripe signs webhook deliveries;
`checkout_completed()` builds the event Stripe sends when a session is paid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.support.fake_http import serving

SECRET_KEY = "sk_test_fakeStripeKey0123456789abcdef"
WEBHOOK_SECRET = "whsec_fakeWebhookSecret0123456789abcdef"
MINIMUM_CENTS = 50  # Stripe's smallest USD charge


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    form: dict[str, Any]  # nested back from a[b][c] keys


@dataclass
class FakeStripe:
    """State and knobs of the fake; the HTTP handler below reads and mutates it."""

    secret_key: str = SECRET_KEY
    base_url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    _intent_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    _saved: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    _fail_remaining: int = 0
    _fail_status: int = 500
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (500, 402, 503, ...)."""
        with self._lock:
            self._fail_remaining, self._fail_status = count, status

    def complete(self, session_id: str) -> dict[str, Any]:
        """Pay the session (a succeeded PaymentIntent for its total); the paid session."""
        with self._lock:
            session = self.sessions[session_id]
            intent_id = f"pi_test_{uuid.uuid4().hex}"
            self.intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "amount_received": session["amount_total"],
                "currency": session["currency"],
                "status": "succeeded",
                "metadata": self._intent_metadata.get(session_id, {}),
                "refunded": 0,
            }
            session.update(status="complete", payment_status="paid", payment_intent=intent_id)
            return dict(session)

    def open_another(self, session_id: str) -> str:
        """A second open session like this one (as after Stripe forgot the first's
        idempotency key); its id."""
        with self._lock:
            other = f"cs_test_{uuid.uuid4().hex}"
            self.sessions[other] = {**self.sessions[session_id], "id": other}
            self._intent_metadata[other] = self._intent_metadata.get(session_id, {})
            return other

    def refunds_of(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            intent = self.sessions[session_id].get("payment_intent")
            return [r for r in self.refunds if r["payment_intent"] == intent]

    def creates(self) -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions")
            ]

    # --- request handling (called from server threads) ------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path, _, query = path.partition("?")
        form = _nest(dict(parse_qsl(body.decode() or query, keep_blank_values=True)))
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, form))
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                return _error(
                    self._fail_status, "An error occurred with our connection.", "api_error"
                )
            given = _key_of(headers.get("authorization", ""))
            if given != self.secret_key:
                return _error(401, f"Invalid API Key provided: {given}", "invalid_request_error")
            if method == "GET":
                return self._read(path, form)
            if (method, path) not in (("POST", "/v1/checkout/sessions"), ("POST", "/v1/refunds")):
                return _error(404, f"Unrecognized request URL ({method}: {path}).")
            key = headers.get("idempotency-key")
            if key is not None and key in self._saved:
                saved_form, status, payload = self._saved[key]
                if saved_form != form:
                    return _error(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                        "idempotency_error",
                    )
                return _json(status, payload, {"Idempotent-Replayed": "true"})
            if path == "/v1/refunds":
                status, payload = self._refund(form)
            else:
                status, payload = self._create_session(form)
            if key is not None:
                self._saved[key] = (form, status, payload)
            return _json(status, payload)

    def _create_session(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if form.get("mode") != "payment":
            return _invalid("mode", "Invalid mode: must be one of payment, setup, subscription")
        for name in ("success_url", "cancel_url"):
            if not str(form.get(name, "")).startswith(("http://", "https://")):
                return _invalid(name, f"Not a valid URL: {name}")
        try:
            item = form["line_items"]["0"]
            price = item["price_data"]
            quantity, unit_amount = int(item["quantity"]), int(price["unit_amount"])
            currency = price["currency"]
            if not price["product_data"]["name"]:
                raise ValueError("a product needs a name")
        except (KeyError, TypeError, ValueError):
            return _invalid("line_items", "Invalid line_items[0]: need quantity and price_data")
        total = quantity * unit_amount
        if currency == "usd" and total < MINIMUM_CENTS:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "amount_too_small",
                    "message": "The Checkout Session's total amount due must add up to at "
                    "least $0.50 usd",
                }
            }
        session_id = f"cs_test_{uuid.uuid4().hex}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "currency": currency,
            "client_reference_id": form.get("client_reference_id"),
            "metadata": form.get("metadata", {}),
            "success_url": form["success_url"],
            "cancel_url": form["cancel_url"],
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "created": int(time.time()),
            "livemode": False,
        }
        self.sessions[session_id] = session
        answer = dict(session)  # the stored one changes when it is paid
        self._intent_metadata[session_id] = form.get("payment_intent_data", {}).get("metadata", {})
        return 200, answer

    def _read(self, path: str, query: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            if session is None:
                return _error(404, "No such checkout.session", "invalid_request_error")
            return _json(200, session)
        if path == "/v1/checkout/sessions":
            intent = query.get("payment_intent")
            found = [s for s in self.sessions.values() if s.get("payment_intent") == intent]
            return _json(200, {"object": "list", "data": found, "has_more": False})
        if path == "/v1/payment_intents/search":
            # the one query StripePayments asks: metadata['order_id']:'<id>' AND status:'…'
            text = str(query.get("query", ""))
            order = text.split("metadata['order_id']:'", 1)[-1].split("'", 1)[0]
            status = text.split("status:'", 1)[-1].split("'", 1)[0] if "status:" in text else None
            found = [
                i
                for i in self.intents.values()
                if i["metadata"].get("order_id") == order and status in (None, i["status"])
            ]
            return _json(200, {"object": "search_result", "data": found, "has_more": False})
        return _error(404, f"Unrecognized request URL (GET: {path}).")

    def _refund(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(str(form.get("payment_intent")))
        if intent is None:
            return _invalid("payment_intent", "No such payment_intent")
        amount = int(form.get("amount") or intent["amount_received"] - intent["refunded"])
        if intent["refunded"] >= intent["amount_received"]:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "charge_already_refunded",
                    "message": "Charge has already been refunded.",
                }
            }
        if amount > intent["amount_received"] - intent["refunded"]:
            return _invalid("amount", "Refund amount is greater than unrefunded amount")
        intent["refunded"] += amount
        refund = {
            "id": f"re_test_{uuid.uuid4().hex}",
            "object": "refund",
            "payment_intent": intent["id"],
            "amount": amount,
            "currency": intent["currency"],
            "status": "succeeded",
            "metadata": form.get("metadata", {}),
        }
        self.refunds.append(refund)
        return 200, refund


# --- Stripe's signing and events -----------------------------------------------------


def signature(payload: bytes, secret: str, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()


def signed_event(
    payload: dict[str, Any], secret: str = WEBHOOK_SECRET, t: int | None = None
) -> tuple[bytes, str]:
    """The body and `Stripe-Signature` header of a delivery, signed as Stripe signs."""
    t = int(time.time()) if t is None else t
    body = json.dumps(payload, separators=(",", ": ")).encode()
    return body, f"t={t},v1={signature(body, secret, t)}"


def checkout_completed(
    session: dict[str, Any],
    payment_status: str = "paid",
    type: str = "checkout.session.completed",
) -> dict[str, Any]:
    """The event Stripe sends when a Checkout Session completes."""
    paid = {**session, "status": "complete", "payment_status": payment_status}
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": type,
        "data": {"object": paid},
    }


# --- HTTP glue ---------------------------------------------------------------------------


def _key_of(authorization: str) -> str:
    """The secret key from `Bearer sk_…` or `Basic base64(sk_…:)`."""
    scheme, _, value = authorization.partition(" ")
    if scheme == "Bearer":
        return value
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().partition(":")[0]
        except ValueError:
            return ""
    return ""


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    """`{"a[b][c]": v}` → `{"a": {"b": {"c": v}}}` (list indexes stay string keys)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.replace("]", "").split("[")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def _json(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def _error(
    status: int, message: str, kind: str = "invalid_request_error"
) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"message": message, "type": kind}})


def _invalid(param: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"type": "invalid_request_error", "param": param, "message": message}}


def running_fake_stripe(**knobs: Any) -> AbstractContextManager[FakeStripe]:
    """Serve a FakeStripe on 127.0.0.1 (a free port) for the `with` block."""
    return serving(FakeStripe(**knobs), "fake-stripe")
