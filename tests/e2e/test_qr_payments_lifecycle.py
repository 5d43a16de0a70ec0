"""Alipay and WeChat Pay through an order's whole life, in one production `sora2 serve`
configured with both (ORDER_EXPIRES_IN=4s so its expiry sweep runs while we watch):

* a payment whose notify never came is found by the sweep's query and credited once;
* an order nobody paid expires (CANCELLED), after its provider was asked;
* a payment that still arrives for a cancelled order is refunded at the provider, never
  credited, and the notify is acknowledged so the provider stops;
* `sora2 ledger verify` is clean afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from tests.support.fake_alipay import APP_ID as ALIPAY_APP_ID
from tests.support.fake_alipay import FakeAlipay, running_fake_alipay
from tests.support.fake_wechat import (
    API_V3_KEY,
    APP_ID,
    CERT_SERIAL,
    MCH_ID,
    PLATFORM_KEY_ID,
    FakeWechat,
    running_fake_wechat,
)
from tests.support.server_process import ServerProcess, production_env, running_server


@pytest.fixture(scope="module")
def alipay() -> Iterator[FakeAlipay]:
    with running_fake_alipay() as fake:
        yield fake


@pytest.fixture(scope="module")
def wechat() -> Iterator[FakeWechat]:
    with running_fake_wechat() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    alipay: FakeAlipay, wechat: FakeWechat, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("qr-lifecycle")
    env = production_env(
        folder,
        ORDER_EXPIRES_IN="4s",
        ALIPAY_APP_ID=ALIPAY_APP_ID,
        ALIPAY_PRIVATE_KEY=alipay.app_keys.private_pem,
        ALIPAY_PUBLIC_KEY=alipay.alipay_keys.public_pem,
        ALIPAY_GATEWAY=alipay.gateway,
        WECHAT_MCH_ID=MCH_ID,
        WECHAT_APP_ID=APP_ID,
        WECHAT_API_V3_KEY=API_V3_KEY,
        WECHAT_PRIVATE_KEY=wechat.merchant_keys.pkcs1_pem,
        WECHAT_CERT_SERIAL=CERT_SERIAL,
        WECHAT_PLATFORM_PUBLIC_KEY=wechat.platform_keys.public_pem,
        WECHAT_PLATFORM_KEY_ID=PLATFORM_KEY_ID,
        WECHAT_API_BASE=wechat.base_url,
    )
    with running_server(folder, env) as server:
        yield server


def user(server: ServerProcess) -> httpx.Client:
    handle = f"life-{uuid4().hex[:8]}"
    r = httpx.post(
        server.base + "/api/auth/register",
        json={"email": f"{handle}@example.com", "password": "password123", "username": handle},
        trust_env=False,
    )
    assert r.status_code == 201, r.text
    return httpx.Client(
        base_url=server.base,
        headers={"Authorization": f"Bearer {r.json()['accessToken']}"},
        timeout=30,
        trust_env=False,
    )


def paying(c: httpx.Client, method: str) -> dict[str, Any]:
    """A PENDING order of 100 credits (10.00) whose QR code was handed out."""
    order = c.post("/api/orders/create", json={"credits": 100, "paymentMethod": method}).json()
    r = c.post(f"/api/orders/{order['id']}/pay")
    assert r.status_code == 200 and r.json()["qrCode"], r.text
    return order


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


def status(c: httpx.Client, order_id: str) -> str:
    return c.get(f"/api/orders/{order_id}").json()["status"]


def balance(c: httpx.Client) -> int:
    return c.get("/api/credits/balance").json()["balance"]


@pytest.mark.parametrize("method", ["ALIPAY", "WECHAT"])
def test_a_payment_whose_notify_never_came_is_found_by_the_sweep_and_credited_once(
    server: ServerProcess, alipay: FakeAlipay, wechat: FakeWechat, method: str
) -> None:
    with user(server) as c:
        order = paying(c, method)
        no = UUID(order["id"]).hex
        (alipay if method == "ALIPAY" else wechat).pay(no)  # paid; the notify is lost
        wait_for(lambda: status(c, order["id"]) == "PAID", "the sweep's query credited it")
        assert balance(c) == 110
        recharges = c.get("/api/credits/transactions", params={"type": "RECHARGE"}).json()
        assert recharges["total"] == 1
    if method == "ALIPAY":
        queries = [q for q in alipay.calls_of("alipay.trade.query") if q.biz["out_trade_no"] == no]
    else:
        queries = wechat.calls_to(f"/v3/pay/transactions/out-trade-no/{no}")
    assert queries and all(q.signature_ok for q in queries)


@pytest.mark.parametrize("method", ["ALIPAY", "WECHAT"])
def test_an_unpaid_order_expires_after_its_provider_was_asked(
    server: ServerProcess, alipay: FakeAlipay, wechat: FakeWechat, method: str
) -> None:
    with user(server) as c:
        order = paying(c, method)
        wait_for(lambda: status(c, order["id"]) == "CANCELLED", "the order expired")
        assert balance(c) == 10
        expired = c.post(f"/api/orders/{order['id']}/pay")
        assert expired.status_code == 409, expired.text  # no QR code for a cancelled order
    no = UUID(order["id"]).hex
    if method == "ALIPAY":
        assert [q for q in alipay.calls_of("alipay.trade.query") if q.biz["out_trade_no"] == no]
    else:
        assert wechat.calls_to(f"/v3/pay/transactions/out-trade-no/{no}")


def test_a_payment_arriving_for_a_cancelled_alipay_order_is_refunded_not_credited(
    server: ServerProcess, alipay: FakeAlipay
) -> None:
    with user(server) as c:
        order = paying(c, "ALIPAY")
        assert c.post(f"/api/orders/{order['id']}/cancel").status_code in (200, 201)
        trade = alipay.pay(UUID(order["id"]).hex)  # the user had the QR code open
        body = alipay.notify(trade)
        for _ in range(3):  # delivered again and again: refunded once
            r = httpx.post(
                server.base + "/api/payments/alipay/notify",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                trust_env=False,
            )
            assert (r.status_code, r.text) == (200, "success")
        assert status(c, order["id"]) == "CANCELLED" and balance(c) == 10
    refunds = [v for k, v in alipay.refunds.items() if k.startswith(UUID(order["id"]).hex)]
    assert len(refunds) == 1 and refunds[0]["refund_amount"] == "10.00"
    assert refunds[0]["trade_no"] == trade["trade_no"]


def test_a_payment_arriving_for_a_cancelled_wechat_order_is_refunded_not_credited(
    server: ServerProcess, wechat: FakeWechat
) -> None:
    with user(server) as c:
        order = paying(c, "WECHAT")
        assert c.post(f"/api/orders/{order['id']}/cancel").status_code in (200, 201)
        paid = wechat.public(wechat.pay(UUID(order["id"]).hex))
        for _ in range(3):
            headers, body = wechat.notify(paid)
            r = httpx.post(
                server.base + "/api/payments/wechat/notify",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
                trust_env=False,
            )
            assert r.status_code == 204, r.text
        assert status(c, order["id"]) == "CANCELLED" and balance(c) == 10
    refunds = [v for k, v in wechat.refunds.items() if k.startswith(UUID(order["id"]).hex)]
    assert len(refunds) == 1
    assert refunds[0]["amount"] == {"refund": 1000, "total": 1000, "currency": "CNY"}
    assert refunds[0]["transaction_id"] == paid["transaction_id"]


def test_the_ledger_verifies_clean_after_the_whole_lifecycle(server: ServerProcess) -> None:
    audit = server.sora2("ledger", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "PROBLEM" not in audit.stdout
    assert "Traceback" not in server.log()
