"""Paying with Stripe over real HTTP: Checkout Sessions on a fake Stripe, signed webhooks in.

The API runs as in production: StripePayments is the payment provider and the same
instance, in `sora2.extras["stripe"]`, verifies webhooks. Money moves only when a
correctly signed `checkout.session.completed` arrives, and only once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from sora2.adapters.payments.stripe import (
    MISCONFIGURED_MESSAGE,
    TOO_SMALL_MESSAGE,
    UNAVAILABLE_MESSAGE,
    PaymentProviderError,
    StripePayments,
    WebhookRejected,
    minor_units,
)
from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.errors import assert_error
from tests.support.fake_stripe import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    checkout_completed,
    running_fake_stripe,
    signature,
    signed_event,
)

WEBHOOK = "/api/payments/stripe/webhook"
SUCCESS_URL = "http://localhost:3000/orders/{ORDER_ID}?paid=1"
CANCEL_URL = "http://localhost:3000/orders/{ORDER_ID}"


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with running_fake_stripe() as stripe:
        yield stripe


def make_stripe(fake: FakeStripe, secret_key: str = SECRET_KEY) -> StripePayments:
    return StripePayments(
        secret_key,
        WEBHOOK_SECRET,
        SUCCESS_URL,
        CANCEL_URL,
        api_base=fake.base_url,
        retry_backoff=0,
    )


@pytest.fixture
def stripe(fake: FakeStripe) -> Iterator[StripePayments]:
    payments = make_stripe(fake)
    yield payments
    payments.close()


@pytest.fixture
def api(tmp_path: Path, stripe: StripePayments) -> Iterator[Api]:
    run = start_api(sqlite_settings(tmp_path), payments=stripe)
    api = next(run)
    api.sora2.extras["stripe"] = stripe
    try:
        yield api
    finally:
        run.close()


# --- helpers -------------------------------------------------------------------------------


def balance(c: httpx.Client) -> int:
    return c.get("/api/credits/balance").json()["balance"]


def recharges(c: httpx.Client) -> int:
    return c.get("/api/credits/transactions", params={"type": "RECHARGE"}).json()["total"]


def order_status(c: httpx.Client, order_id: str) -> str:
    return c.get(f"/api/orders/{order_id}").json()["status"]


def new_order(c: httpx.Client, credits: int = 100) -> dict[str, Any]:
    r = c.post("/api/orders/create", json={"credits": credits, "paymentMethod": "STRIPE"})
    assert r.status_code == 201, r.text
    return r.json()


def pay(c: httpx.Client, order_id: str) -> dict[str, Any]:
    r = c.post(f"/api/orders/{order_id}/pay")
    assert r.status_code == 200, r.text
    return r.json()


def deliver(c: httpx.Client, event: dict[str, Any], **sign: Any) -> httpx.Response:
    body, header = signed_event(event, **sign)
    return c.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})


def paid_order(api: Api, fake: FakeStripe) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A registered user's token, and a STRIPE order of 100 credits with its open session."""
    _, token = api.register("payer")
    with api.client(token) as c:
        order = new_order(c)
        pay(c, order["id"])
    [session] = fake.sessions.values()
    return token, order, session


# --- paying: a Checkout Session, nothing credited yet ------------------------------------


def test_paying_opens_one_checkout_session_and_credits_nothing(api: Api, fake: FakeStripe) -> None:
    _, token = api.register("payer")
    with api.client(token) as c:
        order = new_order(c, credits=100)
        assert order["amount"] == 10.0
        body = pay(c, order["id"])
        [session] = fake.sessions.values()
        assert (body["provider"], body["paid"]) == ("stripe", False)
        assert body["redirectUrl"] == session["url"]
        assert body["redirectUrl"].startswith("https://checkout.stripe.test/")
        assert body["order"]["status"] == "PENDING" and "paidAt" not in body["order"]
        assert order_status(c, order["id"]) == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0

        [create] = fake.creates()
        assert create.headers["authorization"] == f"Bearer {SECRET_KEY}"
        assert create.headers["content-type"] == "application/x-www-form-urlencoded"
        assert order["id"] in create.headers["idempotency-key"]
        form = create.form
        assert form["mode"] == "payment"
        assert form["client_reference_id"] == order["id"]
        assert form["metadata"] == {"order_id": order["id"], "credits": "100"}
        assert form["line_items"]["0"] == {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount": "1000",  # $10.00 in cents
                "product_data": {"name": "100 Sora2 credits"},
            },
        }
        assert form["success_url"] == f"http://localhost:3000/orders/{order['id']}?paid=1"
        assert form["cancel_url"] == f"http://localhost:3000/orders/{order['id']}"
        assert session["amount_total"] == 1000

        again = pay(c, order["id"])  # the user clicks again: the same session
        assert again["redirectUrl"] == body["redirectUrl"]
        assert len(fake.sessions) == 1
        first, second = fake.creates()
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert balance(c) == 10 and order_status(c, order["id"]) == "PENDING"


def test_recharge_with_stripe_answers_the_redirect(api: Api, fake: FakeStripe) -> None:
    _, token = api.register("payer")
    with api.client(token) as c:
        r = c.post("/api/credits/recharge", json={"credits": 50, "paymentMethod": "STRIPE"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["provider"], body["paid"], body["order"]["status"]) == (
            "stripe",
            False,
            "PENDING",
        )
        assert body["redirectUrl"] == next(iter(fake.sessions.values()))["url"]
        assert balance(c) == 10


def test_each_order_gets_its_own_session(api: Api, fake: FakeStripe) -> None:
    _, token = api.register("payer")
    with api.client(token) as c:
        urls = {pay(c, new_order(c)["id"])["redirectUrl"] for _ in range(3)}
    assert len(urls) == 3 == len(fake.sessions)


# --- the webhook: signed, credited exactly once ------------------------------------------


def test_a_signed_completed_session_credits_the_order_exactly_once(
    api: Api, fake: FakeStripe
) -> None:
    token, order, session = paid_order(api, fake)
    event = checkout_completed(session)
    with api.client() as stripe_side, api.client(token) as c:
        r = deliver(stripe_side, event)
        assert r.status_code == 200, r.text
        assert r.json() == {"received": True}
        paid = c.get(f"/api/orders/{order['id']}").json()
        assert paid["status"] == "PAID" and paid["paidAt"]
        assert balance(c) == 110
        [entry] = c.get("/api/credits/transactions", params={"type": "RECHARGE"}).json()["items"]
        assert (entry["amount"], entry["balance"]) == (100, 110)

        for _ in range(3):  # Stripe retries
            assert deliver(stripe_side, event).status_code == 200

        def redeliver(_: int) -> int:
            with api.client() as other:
                return deliver(other, event).status_code

        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(redeliver, range(6))) == {200}
        assert balance(c) == 110 and recharges(c) == 1
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert_error(r, 409)
        assert len(fake.sessions) == 1


def test_concurrent_first_deliveries_credit_once(api: Api, fake: FakeStripe) -> None:
    token, order, session = paid_order(api, fake)
    event = checkout_completed(session)

    def first_delivery(_: int) -> int:
        with api.client() as stripe_side:
            return deliver(stripe_side, event).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(first_delivery, range(8))) == {200}
    with api.client(token) as c:
        assert balance(c) == 110 and recharges(c) == 1
        assert order_status(c, order["id"]) == "PAID"


def test_an_async_payment_credits_when_it_succeeds(api: Api, fake: FakeStripe) -> None:
    token, order, session = paid_order(api, fake)
    with api.client() as stripe_side, api.client(token) as c:
        r = deliver(stripe_side, checkout_completed(session, payment_status="unpaid"))
        assert r.status_code == 200 and r.json() == {"received": True}
        assert order_status(c, order["id"]) == "PENDING" and balance(c) == 10
        succeeded = checkout_completed(session, type="checkout.session.async_payment_succeeded")
        assert deliver(stripe_side, succeeded).status_code == 200
        assert order_status(c, order["id"]) == "PAID" and balance(c) == 110


@pytest.mark.parametrize(
    "event_type",
    ["payment_intent.succeeded", "checkout.session.expired", "charge.refunded"],
)
def test_other_events_are_acknowledged_and_change_nothing(
    api: Api, fake: FakeStripe, event_type: str
) -> None:
    token, order, session = paid_order(api, fake)
    with api.client() as stripe_side, api.client(token) as c:
        r = deliver(stripe_side, checkout_completed(session, type=event_type))
        assert r.status_code == 200 and r.json() == {"received": True}
        assert order_status(c, order["id"]) == "PENDING" and balance(c) == 10


@pytest.mark.parametrize(
    "change",
    [
        {"metadata": {"order_id": str(uuid4())}, "client_reference_id": None},
        {"metadata": {"order_id": "not-a-uuid"}, "client_reference_id": None},
        {"metadata": {}},
        {"client_reference_id": str(uuid4())},  # disagrees with metadata.order_id
    ],
    ids=["unknown-order", "not-an-id", "no-order", "mismatched-reference"],
)
def test_a_paid_session_for_no_order_of_ours_is_acknowledged_and_credits_nothing(
    api: Api, fake: FakeStripe, change: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    token, order, session = paid_order(api, fake)
    with api.client() as stripe_side, api.client(token) as c:
        r = deliver(stripe_side, checkout_completed({**session, **change}))
        assert r.status_code == 200 and r.json() == {"received": True}
        assert order_status(c, order["id"]) == "PENDING" and balance(c) == 10
    assert session["id"] in caplog.text  # someone can look into it


def test_a_user_id_is_not_an_order_id(api: Api, fake: FakeStripe) -> None:
    token, order, session = paid_order(api, fake)
    with api.client(token) as c:
        user_id = c.get("/api/users/profile").json()["id"]
        change = {"metadata": {"order_id": user_id}, "client_reference_id": user_id}
        with api.client() as stripe_side:
            assert (
                deliver(stripe_side, checkout_completed({**session, **change})).status_code == 200
            )
        assert balance(c) == 10


def test_paid_at_stripe_but_cancelled_here_is_refunded_at_stripe(
    api: Api, fake: FakeStripe
) -> None:
    token, order, session = paid_order(api, fake)
    with api.client(token) as c:
        assert c.post(f"/api/orders/{order['id']}/cancel").status_code == 200
        paid = fake.complete(session["id"])
        with api.client() as stripe_side:
            assert deliver(stripe_side, checkout_completed(paid)).status_code == 200
        assert order_status(c, order["id"]) == "CANCELLED" and balance(c) == 10
    [refund] = fake.refunds_of(session["id"])
    assert refund["amount"] == 1000


def test_a_second_paid_session_for_a_paid_order_is_refunded_at_stripe(
    api: Api, fake: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    token, order, session = paid_order(api, fake)
    other = fake.open_another(session["id"])  # e.g. opened after the key expired
    with api.client() as stripe_side, api.client(token) as c:
        first = checkout_completed(fake.complete(session["id"]))
        assert deliver(stripe_side, first).status_code == 200
        second = checkout_completed(fake.complete(other))
        for _ in range(2):
            assert deliver(stripe_side, second).status_code == 200
        assert deliver(stripe_side, first).status_code == 200  # a redelivery: nothing
        assert balance(c) == 110 and recharges(c) == 1
        assert order_status(c, order["id"]) == "PAID"
    assert fake.refunds_of(session["id"]) == []
    [refund] = fake.refunds_of(other)
    assert refund["amount"] == 1000
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("refunded at Stripe" in m and other in m for m in warnings), warnings


def test_a_payment_for_a_failed_order_is_refunded_at_stripe(api: Api, fake: FakeStripe) -> None:
    token, order, session = paid_order(api, fake)
    with api.client() as stripe_side, api.client(token) as c:
        failed = checkout_completed(
            session, payment_status="unpaid", type="checkout.session.async_payment_failed"
        )
        assert deliver(stripe_side, failed).status_code == 200
        assert order_status(c, order["id"]) == "FAILED"
        paid = checkout_completed(fake.complete(session["id"]))
        assert deliver(stripe_side, paid).status_code == 200
        assert order_status(c, order["id"]) == "FAILED" and balance(c) == 10
    assert len(fake.refunds_of(session["id"])) == 1


# --- webhooks that do not prove Stripe sent them ----------------------------------------


def _tampered(body: bytes, header: str) -> tuple[bytes, str]:
    event = json.loads(body)
    event["data"]["object"]["metadata"]["credits"] = "100000"
    return json.dumps(event, separators=(",", ": ")).encode(), header


def _resigned(body: bytes, header: str, secret: str = WEBHOOK_SECRET, age: int = 0) -> str:
    t = int(time.time()) - age
    return f"t={t},v1={signature(body, secret, t)}"


FORGERIES = {
    "wrong-secret": lambda b, h: (b, _resigned(b, h, secret="whsec_someoneelse")),
    "old-timestamp": lambda b, h: (b, _resigned(b, h, age=301)),
    "future-timestamp": lambda b, h: (b, _resigned(b, h, age=-400)),
    "tampered-body": _tampered,
    "no-v1": lambda b, h: (b, h.split(",")[0]),
    "v0-only": lambda b, h: (b, h.replace("v1=", "v0=")),
    "garbage-header": lambda b, h: (b, "garbage"),
    "empty-header": lambda b, h: (b, ""),
    "not-hex": lambda b, h: (b, h.split(",")[0] + ",v1=zz" + "é"),
}


@pytest.mark.parametrize("forge", list(FORGERIES.values()), ids=list(FORGERIES))
def test_a_webhook_without_a_valid_signature_is_refused_and_credits_nothing(
    api: Api, fake: FakeStripe, forge: Any
) -> None:
    token, order, session = paid_order(api, fake)
    body, header = forge(*signed_event(checkout_completed(session)))
    with api.client() as stripe_side, api.client(token) as c:
        r = stripe_side.post(
            WEBHOOK, content=body, headers={"Stripe-Signature": header.encode("utf-8")}
        )
        assert_error(r, 400)
        assert r.json()["error"] == "Validation Error"
        assert order_status(c, order["id"]) == "PENDING" and balance(c) == 10


def test_a_webhook_without_the_signature_header_is_refused(api: Api, fake: FakeStripe) -> None:
    token, order, session = paid_order(api, fake)
    body, _ = signed_event(checkout_completed(session))
    with api.client() as stripe_side, api.client(token) as c:
        r = stripe_side.post(WEBHOOK, content=body, headers={"Content-Type": "application/json"})
        assert_error(r, 400)
        assert "Stripe-Signature" in r.json()["message"]
        assert balance(c) == 10


def test_a_signed_body_that_is_not_an_event_is_refused(api: Api) -> None:
    with api.client() as stripe_side:
        for body in (b"not json", b"[1, 2]", b'{"no": "type"}'):
            t = int(time.time())
            header = f"t={t},v1={signature(body, WEBHOOK_SECRET, t)}"
            r = stripe_side.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
            assert_error(r, 400)


def test_the_webhook_is_404_where_stripe_is_not_configured(tmp_path: Path) -> None:
    run = start_api(sqlite_settings(tmp_path))
    api = next(run)
    try:
        body, header = signed_event({"type": "checkout.session.completed", "data": {}})
        with api.client() as c:
            r = c.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
            assert_error(r, 404, message="Stripe payments are not configured on this server")
    finally:
        run.close()


def test_the_webhook_is_documented(api: Api) -> None:
    with api.client() as c:
        document = c.get("/api-docs.json").json()
    operation = document["paths"][WEBHOOK]["post"]
    assert operation["summary"]
    assert "security" not in operation
    assert {"200", "400", "404"} <= set(operation["responses"])
    assert "application/json" in operation["requestBody"]["content"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (header["name"], header["required"]) == ("Stripe-Signature", True)


# --- Stripe failing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, UNAVAILABLE_MESSAGE), (503, UNAVAILABLE_MESSAGE), (402, MISCONFIGURED_MESSAGE)],
)
def test_stripe_failing_answers_503_and_changes_nothing(
    api: Api, fake: FakeStripe, status: int, message: str
) -> None:
    _, token = api.register("payer")
    with api.client(token) as c:
        order = new_order(c)
        fake.fail_next(100, status)
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert_error(r, 503, message=message)
        assert r.json()["error"] == "Service Unavailable"
        assert order_status(c, order["id"]) == "PENDING" and balance(c) == 10
        assert fake.sessions == {}
        fake.fail_next(0)
        assert pay(c, order["id"])["redirectUrl"]  # Stripe is back: paying works


def test_a_passing_stripe_failure_is_retried_with_the_same_key(api: Api, fake: FakeStripe) -> None:
    _, token = api.register("payer")
    with api.client(token) as c:
        order = new_order(c)
        fake.fail_next(2, 500)
        body = pay(c, order["id"])
    assert body["redirectUrl"] and len(fake.sessions) == 1
    keys = {r.headers["idempotency-key"] for r in fake.creates()}
    assert len(fake.creates()) == 3 and len(keys) == 1


def test_stripe_unreachable_answers_503(tmp_path: Path, fake: FakeStripe) -> None:
    stripe = StripePayments(
        SECRET_KEY,
        WEBHOOK_SECRET,
        SUCCESS_URL,
        CANCEL_URL,
        api_base="http://127.0.0.1:9",
        retry_backoff=0,
        timeout=2,
    )
    run = start_api(sqlite_settings(tmp_path), payments=stripe)
    api = next(run)
    try:
        _, token = api.register("payer")
        with api.client(token) as c:
            order = new_order(c)
            assert_error(c.post(f"/api/orders/{order['id']}/pay"), 503, message=UNAVAILABLE_MESSAGE)
            assert order_status(c, order["id"]) == "PENDING"
    finally:
        run.close()
        stripe.close()


def test_an_amount_below_stripes_minimum_is_a_400(api: Api, fake: FakeStripe) -> None:
    _, token = api.register("payer")
    with api.client(token) as c:
        order = new_order(c, credits=1)  # $0.10
        assert_error(c.post(f"/api/orders/{order['id']}/pay"), 400, message=TOO_SMALL_MESSAGE)
        assert order_status(c, order["id"]) == "PENDING"


def test_the_secret_key_never_reaches_a_response_or_a_log_line(
    api: Api, fake: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    _, token = api.register("payer")
    with api.client(token) as c, api.client() as stripe_side:
        order = new_order(c)
        answers.append(c.post(f"/api/orders/{order['id']}/pay").text)
        [session] = fake.sessions.values()
        body, header = signed_event(checkout_completed(session))
        answers.append(
            stripe_side.post(WEBHOOK, content=body, headers={"Stripe-Signature": header}).text
        )
        assert balance(c) == 110
        body, header = signed_event(checkout_completed(session), secret="whsec_forged")
        answers.append(
            stripe_side.post(WEBHOOK, content=body, headers={"Stripe-Signature": header}).text
        )
        fake.fail_next(3, 500)  # every attempt of one pay
        answers.append(c.post(f"/api/orders/{new_order(c)['id']}/pay").text)
        fake.secret_key = "sk_test_rolledAtStripe"  # our key is refused, and echoed back
        r = c.post(f"/api/orders/{new_order(c)['id']}/pay")
        assert_error(r, 503, message=MISCONFIGURED_MESSAGE)
        answers.append(r.text)
    assert SECRET_KEY in fake.requests[-1].headers["authorization"]  # it went to Stripe only
    for secret in (SECRET_KEY, WEBHOOK_SECRET, "whsec_forged"):
        assert not any(secret in a for a in answers)
        assert secret not in caplog.text
        assert not any(secret in repr(r.args) for r in caplog.records)
    assert "answered 401" in caplog.text  # and the operator can see what went wrong
    assert "no signature matches" in caplog.text
    assert SECRET_KEY not in repr(api.sora2.extras["stripe"])


# --- the adapter on its own ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1.50", "usd", 150),
        ("0.10", "usd", 10),
        ("10", "usd", 1000),
        ("1234.56", "eur", 123456),
        ("500", "jpy", 500),
        ("1.5", "kwd", 1500),
    ],
)
def test_amounts_become_exact_minor_units(amount: str, currency: str, minor: int) -> None:
    assert minor_units(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("0.5", "jpy"),
        ("1.005", "usd"),
        ("0", "usd"),
        ("-1.00", "usd"),
        ("NaN", "usd"),
        ("abc", "usd"),
    ],
)
def test_amounts_that_cannot_be_charged_exactly_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(ValueError):
        minor_units(amount, currency)


def test_an_amount_the_currency_cannot_hold_is_a_provider_error(fake: FakeStripe) -> None:
    stripe = StripePayments(
        SECRET_KEY,
        WEBHOOK_SECRET,
        SUCCESS_URL,
        CANCEL_URL,
        api_base=fake.base_url,
        currency="jpy",
    )
    with pytest.raises(PaymentProviderError):
        stripe.start_payment(uuid4(), "0.50", 5, "STRIPE")
    assert fake.requests == []
    stripe.close()


def test_the_same_order_and_parameters_reuse_one_session(fake: FakeStripe) -> None:
    order_id = uuid4()
    first, again = make_stripe(fake), make_stripe(fake)  # e.g. two API processes
    moved = StripePayments(
        SECRET_KEY, WEBHOOK_SECRET, "https://new.example/ok", CANCEL_URL, api_base=fake.base_url
    )
    try:
        a = first.start_payment(order_id, "10.00", 100, "STRIPE")
        b = again.start_payment(order_id, "10.00", 100, "STRIPE")
        assert (a.provider_reference, a.redirect_url) == (b.provider_reference, b.redirect_url)
        c = moved.start_payment(order_id, "10.00", 100, "STRIPE")  # new URLs: a new session
        assert c.provider_reference != a.provider_reference
        assert len(fake.sessions) == 2
    finally:
        for payments in (first, again, moved):
            payments.close()


def test_basic_auth_is_accepted_by_the_fake_like_stripe(fake: FakeStripe) -> None:
    form = {"mode": "payment"}
    r = httpx.post(f"{fake.base_url}/v1/checkout/sessions", data=form, auth=(SECRET_KEY, ""))
    assert r.status_code == 400 and r.json()["error"]["param"] == "success_url"
    r = httpx.post(f"{fake.base_url}/v1/checkout/sessions", data=form, auth=("sk_test_no", ""))
    assert r.status_code == 401


# --- verify_webhook ------------------------------------------------------------------------

NOW = 1_750_000_000.0
PAYLOAD = b'{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {}}}'


def verifier() -> StripePayments:
    return StripePayments(SECRET_KEY, WEBHOOK_SECRET, SUCCESS_URL, CANCEL_URL)


def header_for(payload: bytes = PAYLOAD, secret: str = WEBHOOK_SECRET, t: float = NOW) -> str:
    return f"t={int(t)},v1={signature(payload, secret, int(t))}"


def test_a_stripe_signed_payload_verifies_to_its_event() -> None:
    event = verifier().verify_webhook(PAYLOAD, header_for(), now=NOW)
    assert event == json.loads(PAYLOAD)


def test_any_of_several_v1_signatures_may_match() -> None:
    good = signature(PAYLOAD, WEBHOOK_SECRET, int(NOW))
    old = signature(PAYLOAD, "whsec_rolled_away", int(NOW))
    for header in (
        f"t={int(NOW)},v1={old},v1={good}",
        f"t={int(NOW)},v1={good},v1={old}",
        f"v0=deadbeef,v1={good},t={int(NOW)}",
        f"t={int(NOW)}, v1={good}",
    ):
        assert verifier().verify_webhook(PAYLOAD, header, now=NOW)["id"] == "evt_1"


@pytest.mark.parametrize(
    ("header", "now", "reason"),
    [
        (header_for(secret="whsec_wrong"), NOW, "no signature matches"),
        (header_for(payload=PAYLOAD + b" "), NOW, "no signature matches"),
        (header_for(t=NOW - 301), NOW, "too old"),
        (header_for(t=NOW + 301), NOW, "in the future"),
        (f"t={int(NOW)}", NOW, "no v1"),
        (f"v1={signature(PAYLOAD, WEBHOOK_SECRET, int(NOW))}", NOW, "no timestamp"),
        (f"t=soon,v1={signature(PAYLOAD, WEBHOOK_SECRET, int(NOW))}", NOW, "timestamp"),
        (
            f"t={int(NOW)},v1={signature(PAYLOAD, WEBHOOK_SECRET, int(NOW)).upper()}",
            NOW,
            "no signature matches",
        ),
        (f"t={int(NOW)},v1=é", NOW, "no signature matches"),
        ("t", NOW, "malformed"),
        ("", NOW, "missing"),
    ],
    ids=[
        "wrong-secret",
        "changed-payload",
        "old",
        "future",
        "no-v1",
        "no-t",
        "bad-t",
        "upper-hex",
        "non-ascii",
        "malformed",
        "empty",
    ],
)
def test_verification_refuses(header: str, now: float, reason: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        verifier().verify_webhook(PAYLOAD, header, now=now)
    assert reason in refused.value.reason


def test_the_tolerance_is_inclusive_at_300_seconds() -> None:
    assert verifier().verify_webhook(PAYLOAD, header_for(t=NOW - 300), now=NOW)
    assert verifier().verify_webhook(PAYLOAD, header_for(t=NOW + 300), now=NOW)


def test_the_adapter_signs_as_the_fake_does() -> None:
    from sora2.adapters.payments.stripe import sign

    assert sign(PAYLOAD, WEBHOOK_SECRET, 123) == signature(PAYLOAD, WEBHOOK_SECRET, 123)


@pytest.mark.parametrize("change", [{"amount_total": 1}, {"currency": "eur"}])
def test_a_session_that_paid_another_amount_credits_nothing(
    api: Api, fake: FakeStripe, change: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    token, order, session = paid_order(api, fake)
    event = checkout_completed({**session, **change})
    with api.client() as stripe_side, api.client(token) as c:
        assert deliver(stripe_side, event).status_code == 200  # Stripe must not retry it
        assert order_status(c, order["id"]) == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0
    assert any("reconcile" in r.getMessage() for r in caplog.records)


def test_stripe_keys_in_the_environment_wire_the_provider_and_its_webhook(
    tmp_path: Path, fake: FakeStripe
) -> None:
    settings = sqlite_settings(
        tmp_path,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake.base_url,
    )
    run = start_api(settings)
    api = next(run)
    try:
        token, order, session = paid_order(api, fake)
        assert session["metadata"]["order_id"] == order["id"]
        with api.client() as stripe_side, api.client(token) as c:
            assert deliver(stripe_side, checkout_completed(session)).status_code == 200
            assert order_status(c, order["id"]) == "PAID" and balance(c) == 110
            alipay = c.post("/api/credits/recharge", json={"credits": 5, "paymentMethod": "ALIPAY"})
            assert alipay.status_code == 201 and alipay.json()["paid"] is True  # dev sandbox
    finally:
        run.close()
