"""The whole order lifecycle over real HTTP: cancel, expire, refund, late payments.

The server runs with the sandbox (orders pay at once) or with Stripe against the local fake
gateway; refunds are started through `Orders.refund`, the method the admin API calls.
Every scenario ends with `sora2 ledger verify` run as an auditor runs it: a separate
process over the same store, which must find nothing wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from sora2.adapters.payments.stripe import StripePayments
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict, Unavailable
from sora2.domain.orders.order import Order
from tests.conftest import Api, start_api
from tests.support.backends import cli_env, sqlite_settings
from tests.support.errors import assert_error
from tests.support.fake_stripe import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    checkout_completed,
    running_fake_stripe,
    signed_event,
)
from tests.support.generators import HOLD, ScriptedGenerator

WEBHOOK = "/api/payments/stripe/webhook"


# --- helpers -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until `condition()` is truthy (the machine is loaded: never sleep-then-assert)."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


def ledger(api: Api, folder: Path, *args: str) -> str:
    """`sora2 ledger <args>` in its own process over the server's store; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "sora2", "ledger", *args],
        cwd=folder,
        env=cli_env(api.sora2.settings, folder),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def verify_ledger(api: Api, folder: Path) -> str:
    """`sora2 ledger verify` finds nothing wrong (exit 0)."""
    out = ledger(api, folder, "verify")
    assert out.startswith("OK:"), out
    return out


def history(api: Api, order_id: UUID) -> list[Any]:
    """The order's events as the log holds them."""
    return list(api.sora2.log.events.get(order_id))


def balance(c: httpx.Client) -> int:
    return c.get("/api/credits/balance").json()["balance"]


def entries(c: httpx.Client, kind: str | None = None) -> list[dict[str, Any]]:
    params = {"type": kind} if kind else {}
    r = c.get("/api/credits/transactions", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def order_of(c: httpx.Client, order_id: str) -> dict[str, Any]:
    r = c.get(f"/api/orders/{order_id}")
    assert r.status_code == 200, r.text
    return r.json()


def new_order(c: httpx.Client, credits: int = 100, method: str = "ALIPAY") -> dict[str, Any]:
    r = c.post("/api/orders/create", json={"credits": credits, "paymentMethod": method})
    assert r.status_code == 201, r.text
    return r.json()


def recharge(c: httpx.Client, credits: int = 100) -> dict[str, Any]:
    """A PAID sandbox order."""
    r = c.post("/api/credits/recharge", json={"credits": credits, "paymentMethod": "WECHAT"})
    assert r.status_code == 201, r.text
    assert r.json()["order"]["status"] == "PAID"
    return r.json()["order"]


# --- the sandbox server ------------------------------------------------------------------------


@pytest.fixture
def generator() -> Iterator[ScriptedGenerator]:
    scripted = ScriptedGenerator()
    yield scripted
    scripted.release.set()


@pytest.fixture
def api(tmp_path: Path, generator: ScriptedGenerator) -> Iterator[Api]:
    run = start_api(sqlite_settings(tmp_path), generator=generator)
    yield next(run)
    run.close()


def test_a_pending_order_is_cancelled_once_and_only_by_its_owner(api: Api, tmp_path: Path) -> None:
    _, token = api.register("ann")
    _, other = api.register("bob")
    with api.client(token) as c, api.client(other) as intruder:
        order = new_order(c)
        assert_error(intruder.post(f"/api/orders/{order['id']}/cancel"), 404)
        assert order_of(c, order["id"])["status"] == "PENDING"

        r = c.post(f"/api/orders/{order['id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "CANCELLED" and r.json()["id"] == order["id"]
        assert order_of(c, order["id"])["status"] == "CANCELLED"
        listed = c.get("/api/orders", params={"status": "CANCELLED"}).json()["items"]
        assert [o["id"] for o in listed] == [order["id"]]

        again = assert_error(c.post(f"/api/orders/{order['id']}/cancel"), 409)
        assert "CANCELLED" in again["message"]
        assert_error(c.post(f"/api/orders/{order['id']}/pay"), 409)  # never paid now
        assert order_of(c, order["id"])["status"] == "CANCELLED"
        assert balance(c) == 10 and entries(c, "RECHARGE") == []
        assert_error(c.post("/api/orders/00000000-0000-0000-0000-000000000001/cancel"), 404)
        assert_error(c.post("/api/orders/not-an-id/cancel"), 404)
    verify_ledger(api, tmp_path)


def test_a_paid_order_cannot_be_cancelled(api: Api) -> None:
    _, token = api.register("ann")
    with api.client(token) as c:
        order = recharge(c)
        body = assert_error(c.post(f"/api/orders/{order['id']}/cancel"), 409)
        assert "PAID" in body["message"]
        assert order_of(c, order["id"])["status"] == "PAID" and balance(c) == 110


def test_a_refund_takes_the_credits_back_as_a_reversal(api: Api, tmp_path: Path) -> None:
    user, token = api.register("ann")
    admin, _ = api.register("boss")
    with api.client(token) as c:
        order = recharge(c, 100)
        assert balance(c) == 110

        row = api.sora2.orders.refund(
            UUID(order["id"]), admin_id=UUID(admin["id"]), reason="asked by the customer"
        )
        assert row.status == "REFUNDED"

        assert order_of(c, order["id"])["status"] == "REFUNDED"
        assert balance(c) == 10
        [reversal] = entries(c, "REVERSAL")
        assert (reversal["amount"], reversal["balance"], reversal["type"]) == (-100, 10, "REVERSAL")
        assert [e["type"] for e in entries(c)] == ["REVERSAL", "RECHARGE", "REWARD"]
        listed = c.get("/api/orders", params={"status": "REFUNDED"}).json()["items"]
        assert [o["id"] for o in listed] == [order["id"]]

        with pytest.raises(Conflict, match="already refunded"):  # the admin API's 409
            api.sora2.orders.refund(UUID(order["id"]))
        assert balance(c) == 10 and len(entries(c, "REVERSAL")) == 1
        assert_error(c.post(f"/api/orders/{order['id']}/cancel"), 409)
    last = history(api, UUID(order["id"]))[-1]
    assert isinstance(last, Order.Refunded)
    assert (last.admin_id, last.reason, last.credits) == (
        UUID(admin["id"]),
        "asked by the customer",
        100,
    )
    out = verify_ledger(api, tmp_path)
    assert "2 users, 4 entries" in out

    shown = ledger(api, tmp_path, "history", "--user", "ann@example.com").splitlines()
    rows = [line.split() for line in shown if line.strip()[:1].isdigit()]
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("REWARD", "+10", "10", "-"),
        ("RECHARGE", "+100", "110", order["id"]),
        ("REVERSAL", "-100", "10", order["id"]),
    ]
    assert shown[-1] == "Balance: 10 credits after 3 entries"
    exported = [
        json.loads(line)
        for line in ledger(api, tmp_path, "export", "--format", "jsonl", "--user", user["id"])
        .strip()
        .splitlines()
    ]
    assert exported[-1]["type"] == "REVERSAL"
    assert (exported[-1]["amount"], exported[-1]["balance"]) == (-100, 10)
    assert exported[-1]["reference"] == order["id"]


def test_credits_spent_or_reserved_by_a_running_video_block_the_refund(
    api: Api, generator: ScriptedGenerator, tmp_path: Path
) -> None:
    _, token = api.register("ann")
    with api.client(token) as c:
        order = recharge(c, 100)  # balance 110
        r = c.post("/api/videos/generate", json={"prompt": f"{HOLD} a lighthouse", "duration": 20})
        assert r.status_code == 201, r.text  # 20 credits held while it renders
        generator.wait_started()
        assert balance(c) == 90

        with pytest.raises(Conflict) as refused:
            api.sora2.orders.refund(UUID(order["id"]))
        message = str(refused.value)
        assert "holds only 90 unspent" in message and "10 short" in message
        assert "20 more are reserved by videos in progress" in message

        assert order_of(c, order["id"])["status"] == "PAID"
        assert balance(c) == 90 and entries(c, "REVERSAL") == []

        video_id = r.json()["id"]
        assert c.post(f"/api/videos/{video_id}/cancel").status_code == 200  # 20 come back
        wait_for(lambda: balance(c) == 110, "the cancelled video's refund")
        api.sora2.orders.refund(UUID(order["id"]))
        assert balance(c) == 10 and order_of(c, order["id"])["status"] == "REFUNDED"
    verify_ledger(api, tmp_path)


def test_unpaid_orders_expire_in_the_running_server(tmp_path: Path) -> None:
    run = start_api(sqlite_settings(tmp_path, ORDER_EXPIRES_IN="2s"))
    api = next(run)
    try:
        _, token = api.register("ann")
        with api.client(token) as c:
            unpaid = new_order(c, 30)
            paid = recharge(c, 40)
            assert order_of(c, unpaid["id"])["status"] == "PENDING"

            wait_for(
                lambda: order_of(c, unpaid["id"])["status"] == "CANCELLED", "the order's expiry"
            )
            assert order_of(c, paid["id"])["status"] == "PAID"
            assert balance(c) == 50
            assert_error(c.post(f"/api/orders/{unpaid['id']}/pay"), 409)
            events = history(api, UUID(unpaid["id"]))
            assert isinstance(events[-1], Order.Expired)
            assert events[-1].reason == "not paid within 2s"
            assert sum(isinstance(e, Order.Expired) for e in events) == 1
        verify_ledger(api, tmp_path)
    finally:
        run.close()


# --- with Stripe (the fake gateway) -----------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with running_fake_stripe() as stripe:
        yield stripe


@contextmanager
def stripe_api(folder: Path, fake: FakeStripe, **env: str) -> Iterator[Api]:
    settings = sqlite_settings(
        folder,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake.base_url,
        PAYMENTS_SANDBOX="false",
        **env,
    )
    run = start_api(settings)
    api = next(run)
    stripe = api.sora2.extras["stripe"]
    assert isinstance(stripe, StripePayments)
    stripe.retry_backoff = 0
    try:
        yield api
    finally:
        run.close()


@pytest.fixture
def stripe(tmp_path: Path, fake: FakeStripe) -> Iterator[Api]:
    with stripe_api(tmp_path, fake) as api:
        yield api


def deliver(api: Api, event: dict[str, Any]) -> httpx.Response:
    body, header = signed_event(event)
    with api.client() as stripe_side:
        return stripe_side.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})


def open_session(api: Api, fake: FakeStripe, c: httpx.Client, credits: int = 100) -> tuple:
    order = new_order(c, credits, "STRIPE")
    r = c.post(f"/api/orders/{order['id']}/pay")
    assert r.status_code == 200 and r.json()["paid"] is False, r.text
    [session] = [s for s in fake.sessions.values() if s["metadata"]["order_id"] == order["id"]]
    return order, session["id"]


def test_a_payment_for_a_cancelled_order_is_refunded_at_stripe_never_credited(
    stripe: Api, fake: FakeStripe, tmp_path: Path
) -> None:
    _, token = stripe.register("ann")
    with stripe.client(token) as c:
        order, session_id = open_session(stripe, fake, c)
        assert c.post(f"/api/orders/{order['id']}/cancel").status_code == 200
        paid = fake.complete(session_id)  # the customer finished paying on Stripe's page

        event = checkout_completed(paid)
        for _ in range(3):  # Stripe delivers again and again
            r = deliver(stripe, event)
            assert r.status_code == 200, r.text

        [refund] = fake.refunds_of(session_id)
        assert (refund["amount"], refund["metadata"]) == (1000, {"order_id": order["id"]})
        assert order_of(c, order["id"])["status"] == "CANCELLED"
        assert balance(c) == 10 and entries(c, "RECHARGE") == []
        events = history(stripe, UUID(order["id"]))
        returned = [e for e in events if isinstance(e, Order.PaymentReturned)]
        assert [e.provider_reference for e in returned] == [session_id]
    verify_ledger(stripe, tmp_path)


def test_a_payment_for_a_cancelled_order_is_retried_while_stripe_cannot_refund(
    stripe: Api, fake: FakeStripe
) -> None:
    _, token = stripe.register("ann")
    with stripe.client(token) as c:
        order, session_id = open_session(stripe, fake, c)
        assert c.post(f"/api/orders/{order['id']}/cancel").status_code == 200
        event = checkout_completed(fake.complete(session_id))
        fake.fail_next(10, 503)
        assert_error(deliver(stripe, event), 503)  # so Stripe delivers it again later
        assert fake.refunds_of(session_id) == []
        fake.fail_next(0)
        assert deliver(stripe, event).status_code == 200
        assert len(fake.refunds_of(session_id)) == 1 and balance(c) == 10


def test_a_stripe_order_refund_goes_to_its_payment_intent(
    stripe: Api, fake: FakeStripe, tmp_path: Path
) -> None:
    _, token = stripe.register("ann")
    with stripe.client(token) as c:
        order, session_id = open_session(stripe, fake, c)
        assert deliver(stripe, checkout_completed(fake.complete(session_id))).status_code == 200
        assert balance(c) == 110

        fake.fail_next(10, 503)  # Stripe is down: nothing refunded, nothing recorded
        with pytest.raises(Unavailable):
            stripe.sora2.orders.refund(UUID(order["id"]))
        assert fake.refunds_of(session_id) == []
        assert order_of(c, order["id"])["status"] == "PAID" and balance(c) == 110
        fake.fail_next(0)

        stripe.sora2.orders.refund(UUID(order["id"]), reason="duplicate purchase")
        [refund] = fake.refunds_of(session_id)
        assert refund["amount"] == 1000
        [create] = [r for r in fake.requests if r.path == "/v1/refunds" and r.method == "POST"][-1:]
        assert create.headers["idempotency-key"].startswith(f"sora2-refund-{order['id']}-")
        assert order_of(c, order["id"])["status"] == "REFUNDED"
        assert balance(c) == 10 and [e["amount"] for e in entries(c, "REVERSAL")] == [-100]
    verify_ledger(stripe, tmp_path)


def test_a_final_payment_failure_marks_the_order_failed(stripe: Api, fake: FakeStripe) -> None:
    _, token = stripe.register("ann")
    with stripe.client(token) as c:
        order, session_id = open_session(stripe, fake, c)
        failed = checkout_completed(
            fake.sessions[session_id],
            payment_status="unpaid",
            type="checkout.session.async_payment_failed",
        )
        assert deliver(stripe, failed).status_code == 200
        assert order_of(c, order["id"])["status"] == "FAILED"
        assert deliver(stripe, failed).status_code == 200  # again: nothing more
        assert_error(c.post(f"/api/orders/{order['id']}/cancel"), 409)
        assert balance(c) == 10
        events = history(stripe, UUID(order["id"]))
        assert sum(isinstance(e, Order.Failed) for e in events) == 1


def test_the_expiry_sweep_credits_an_order_paid_at_stripe_whose_webhook_never_came(
    tmp_path: Path, fake: FakeStripe
) -> None:
    with stripe_api(tmp_path, fake, ORDER_EXPIRES_IN="2s") as api:
        _, token = api.register("ann")
        with api.client(token) as c:
            paid, session_id = open_session(api, fake, c)
            unpaid, _ = open_session(api, fake, c, credits=60)
            fake.complete(session_id)  # paid there; its webhook is lost

            wait_for(lambda: order_of(c, unpaid["id"])["status"] == "CANCELLED", "the expiry")
            wait_for(lambda: order_of(c, paid["id"])["status"] == "PAID", "the reconcile")
            assert balance(c) == 110
            [recharged] = entries(c, "RECHARGE")
            assert recharged["amount"] == 100
            ledger = api.sora2.log.load(
                CreditLedger, CreditLedger.create_id(UUID(c.get("/api/users/profile").json()["id"]))
            )
            assert ledger.recharged_orders == {UUID(paid["id"])}
            assert fake.refunds == []
        verify_ledger(api, tmp_path)
