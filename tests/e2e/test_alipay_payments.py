"""Paying with Alipay against a real `sora2 serve` in production mode on embedded SQLite.

The server gets its keys from the environment as an operator gives them (the app key as
PKCS#1 PEM text, Alipay's public key as a file) and talks to a fake Alipay gateway that
verifies every call's RSA2 signature. Notifies are signed by a key pair this test
generated; only a notify that proves it is Alipay's and pays exactly an ALIPAY order of
ours credits it, and only once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from sora2.adapters.payments.alipay import (
    MISCONFIGURED_MESSAGE,
    AlipayPayments,
    signing_string,
)
from sora2.adapters.payments.keys import load_private_key, load_public_key
from sora2.domain.errors import Unavailable
from tests.support.errors import assert_error
from tests.support.fake_alipay import APP_ID, FakeAlipay, running_fake_alipay
from tests.support.rsa_keys import new_pair
from tests.support.server_process import ServerProcess, production_env, running_server

NOTIFY = "/api/payments/alipay/notify"
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAlipay]:
    with running_fake_alipay() as alipay:
        yield alipay


@pytest.fixture(scope="module")
def server(fake: FakeAlipay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("alipay-server")
    public_key_file = folder / "alipay_public.pem"
    public_key_file.write_text(fake.alipay_keys.public_pem)
    env = production_env(
        folder,
        ALIPAY_APP_ID=APP_ID,
        ALIPAY_PRIVATE_KEY=fake.app_keys.pkcs1_pem,
        ALIPAY_PUBLIC_KEY=str(public_key_file),
        ALIPAY_GATEWAY=fake.gateway,
    )
    with running_server(folder, env) as server:
        yield server


# --- helpers -------------------------------------------------------------------------------


def user(server: ServerProcess, name: str) -> httpx.Client:
    """A newly registered user's client (10 signup credits)."""
    handle = f"{name.replace(' ', '_')}-{uuid4().hex[:8]}"
    r = httpx.post(
        server.base + "/api/auth/register",
        json={"email": f"{handle}@example.com", "password": "password123", "username": handle},
        trust_env=False,
    )
    assert r.status_code == 201, r.text
    token = r.json()["accessToken"]
    return httpx.Client(
        base_url=server.base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )


def balance(c: httpx.Client) -> int:
    return c.get("/api/credits/balance").json()["balance"]


def recharges(c: httpx.Client) -> int:
    return c.get("/api/credits/transactions", params={"type": "RECHARGE"}).json()["total"]


def order_of(c: httpx.Client, order_id: str) -> dict[str, Any]:
    r = c.get(f"/api/orders/{order_id}")
    assert r.status_code == 200, r.text
    return r.json()


def placed_and_scanned(c: httpx.Client, fake: FakeAlipay, credits: int = 100) -> dict[str, Any]:
    """An ALIPAY order paid at the fake: the trade its notify reports."""
    r = c.post("/api/orders/create", json={"credits": credits, "paymentMethod": "ALIPAY"})
    assert r.status_code == 201, r.text
    order = r.json()
    assert c.post(f"/api/orders/{order['id']}/pay").status_code == 200
    trade = fake.pay(UUID(order["id"]).hex)
    return {**trade, "order_id": order["id"]}


def deliver(server: ServerProcess, body: bytes) -> httpx.Response:
    return httpx.post(server.base + NOTIFY, content=body, headers=FORM, trust_env=False)


def assert_refused(r: httpx.Response, why: str) -> None:
    body = assert_error(r, 400)
    assert why in body["message"], body["message"]


# --- paying: a QR code, nothing credited yet ---------------------------------------------


def test_paying_answers_alipays_qr_code_and_expiry_and_credits_nothing(
    server: ServerProcess, fake: FakeAlipay
) -> None:
    with user(server, "qr") as c:
        r = c.post("/api/orders/create", json={"credits": 123, "paymentMethod": "ALIPAY"})
        order = r.json()
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert r.status_code == 200, r.text
        answer = r.json()
        trade = fake.trades[UUID(order["id"]).hex]
        assert (answer["provider"], answer["paid"]) == ("alipay", False)
        assert answer["qrCode"] == trade["qr_code"]
        assert answer["qrCode"].startswith("https://qr.alipay.com/")
        assert "redirectUrl" not in answer and answer["order"]["status"] == "PENDING"
        created = datetime.fromisoformat(order["createdAt"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(answer["expiresAt"].replace("Z", "+00:00"))
        # ORDER_EXPIRES_IN's default, to the second Alipay takes
        assert timedelta(minutes=30, seconds=-1) < expires - created <= timedelta(minutes=30)

        call = next(
            c
            for c in fake.calls_of("alipay.trade.precreate")
            if c.biz["out_trade_no"] == UUID(order["id"]).hex
        )
        assert call.signature_ok  # the fake verified the app key's RSA2 signature
        assert call.params["app_id"] == APP_ID and call.params["sign_type"] == "RSA2"
        assert call.params["notify_url"] == server.base + NOTIFY
        assert call.biz["out_trade_no"] == UUID(order["id"]).hex
        assert call.biz["total_amount"] == "12.30"  # 123 credits × 0.10, two decimals
        beijing = expires.astimezone(timezone(timedelta(hours=8)))
        assert call.biz["time_expire"] == beijing.strftime("%Y-%m-%d %H:%M:%S")

        again = c.post(f"/api/orders/{order['id']}/pay").json()  # clicked twice: same trade
        assert again["qrCode"] == answer["qrCode"] and again["expiresAt"] == answer["expiresAt"]
        assert order_of(c, order["id"])["status"] == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0


def test_a_gateway_hiccup_is_retried_and_a_dead_gateway_is_a_503(
    server: ServerProcess, fake: FakeAlipay
) -> None:
    with user(server, "hiccup") as c:
        order = c.post("/api/orders/create", json={"credits": 10, "paymentMethod": "ALIPAY"}).json()
        fake.fail_next(1)
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert r.status_code == 200 and r.json()["qrCode"], r.text
        fake.fail_next(10)
        try:
            r = c.post(f"/api/orders/{order['id']}/pay")
        finally:
            fake.fail_next(0)
        assert r.status_code == 503, r.text
        assert r.json()["message"] == "Alipay is unavailable right now; please try again later."


# --- the notify: verified, matched, credited exactly once ---------------------------------


def test_a_good_notify_credits_once_under_20_parallel_deliveries(
    server: ServerProcess, fake: FakeAlipay
) -> None:
    with user(server, "payer") as c:
        trade = placed_and_scanned(c, fake)
        notifies = [fake.notify(trade) for _ in range(20)]  # each its own notify_id
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda body: deliver(server, body), notifies))
        assert [(r.status_code, r.text) for r in answers] == [(200, "success")] * 20
        assert answers[0].headers["content-type"].startswith("text/plain")
        order = order_of(c, trade["order_id"])
        assert order["status"] == "PAID" and order["paidAt"]
        assert balance(c) == 110 and recharges(c) == 1

        replay = deliver(server, notifies[0])  # Alipay delivers again next hour
        assert (replay.status_code, replay.text) == (200, "success")
        finished = deliver(server, fake.notify(trade, trade_status="TRADE_FINISHED"))
        assert finished.text == "success"
        assert balance(c) == 110 and recharges(c) == 1


@pytest.mark.parametrize(
    ("breaking", "why"),
    [
        ("forged", "signature is not Alipay's"),
        ("tampered", "signature is not Alipay's"),
        ("unsigned", "signature is not Alipay's"),
        ("rsa1", "not signed with RSA2"),
        ("amount", "amount paid is not the order's"),
        ("app", "another app"),
        ("unknown order", "names no order of ours"),
        ("not ours", "names no order of ours"),
        ("garbage", "not a form"),
    ],
)
def test_a_notify_that_does_not_prove_itself_or_match_the_order_credits_nothing(
    server: ServerProcess, fake: FakeAlipay, breaking: str, why: str
) -> None:
    with user(server, "victim") as c:
        trade = placed_and_scanned(c, fake)
        if breaking == "forged":  # signed, but not by Alipay's key
            body = fake.notify(trade, key=new_pair().private_key)
        elif breaking == "tampered":  # Alipay's notify for 1 credit, amount raised afterwards
            body = fake.notify(trade).replace(b"total_amount=10.00", b"total_amount=99.00")
        elif breaking == "unsigned":
            body = re.sub(rb"&sign=[^&]*", b"", fake.notify(trade))
        elif breaking == "rsa1":
            body = fake.notify(trade).replace(b"sign_type=RSA2", b"sign_type=RSA")
        elif breaking == "amount":  # genuinely signed, for less than the order costs
            body = fake.notify(trade, total_amount="0.01")
        elif breaking == "app":
            body = fake.notify(trade, app_id="2021000000009999")
        elif breaking == "unknown order":
            body = fake.notify(trade, out_trade_no=uuid4().hex)
        elif breaking == "not ours":
            body = fake.notify(trade, out_trade_no="T2026120100001")
        else:
            body = b"\xff\xfe%%%"
        r = deliver(server, body)
        assert_refused(r, why)
        assert order_of(c, trade["order_id"])["status"] == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0


def test_a_notify_for_an_order_of_another_method_credits_nothing(
    server: ServerProcess, fake: FakeAlipay
) -> None:
    with user(server, "mixed") as c:
        trade = placed_and_scanned(c, fake)
        r = c.post("/api/orders/create", json={"credits": 100, "paymentMethod": "WECHAT"})
        wechat_order = r.json()
        r = deliver(server, fake.notify(trade, out_trade_no=UUID(wechat_order["id"]).hex))
        assert_refused(r, "not paid with ALIPAY")
        assert order_of(c, wechat_order["id"])["status"] == "PENDING"
        assert balance(c) == 10


def test_a_notify_that_reports_no_payment_is_acknowledged_and_credits_nothing(
    server: ServerProcess, fake: FakeAlipay
) -> None:
    with user(server, "waiting") as c:
        trade = placed_and_scanned(c, fake)
        for status in ("WAIT_BUYER_PAY", "TRADE_CLOSED"):
            r = deliver(server, fake.notify(trade, trade_status=status))
            assert (r.status_code, r.text) == (200, "success")
        assert order_of(c, trade["order_id"])["status"] == "PENDING"
        assert balance(c) == 10


def test_the_ledger_verifies_clean_after_all_those_notifies(
    server: ServerProcess, fake: FakeAlipay
) -> None:
    with user(server, "audited") as c:
        trade = placed_and_scanned(c, fake)
        forged = deliver(server, fake.notify(trade, key=new_pair().private_key))
        assert_refused(forged, "signature is not Alipay's")  # logged, as every refusal
        deliver(server, fake.notify(trade))
        assert balance(c) == 110
    audit = server.sora2("ledger", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "PROBLEM" not in audit.stdout
    log = server.log()
    assert "BEGIN" not in log and "PRIVATE" not in log  # no key in the log
    assert "Traceback" not in log and "refused an Alipay notify" in log


# --- query and refund: signed calls the gateway accepts --------------------------------


@pytest.fixture
def alipay(fake: FakeAlipay) -> Iterator[AlipayPayments]:
    provider = AlipayPayments(
        APP_ID,
        load_private_key(fake.app_keys.private_pem, "ALIPAY_PRIVATE_KEY"),
        load_public_key(fake.alipay_keys.public_pem, "ALIPAY_PUBLIC_KEY"),
        notify_url="http://127.0.0.1:9/api/payments/alipay/notify",
        gateway=fake.gateway,
        retry_backoff=0,
    )
    yield provider
    provider.close()


def test_query_finds_a_paid_trade_of_the_right_amount_only(
    alipay: AlipayPayments, fake: FakeAlipay
) -> None:
    order_id = uuid4()
    assert alipay.query(order_id, "5.00") is None  # never scanned: Alipay knows no trade
    alipay.start_payment(order_id, "5.00", 50, "ALIPAY")
    assert alipay.query(order_id, "5.00") is None
    trade = fake.pay(order_id.hex)
    assert alipay.query(order_id, "5.00") == trade["trade_no"]
    assert alipay.query(order_id, "50.00") is None  # paid, but not what the order costs
    queries = fake.calls_of("alipay.trade.query")
    assert queries and all(q.signature_ok for q in queries)
    assert {q.biz["out_trade_no"] for q in queries} == {order_id.hex}


def test_refund_gives_the_payment_back_once(alipay: AlipayPayments, fake: FakeAlipay) -> None:
    order_id = uuid4()
    alipay.start_payment(order_id, "7.50", 75, "ALIPAY")
    with pytest.raises(Unavailable):  # not paid yet: nothing to refund
        alipay.refund(order_id, "7.50", None)
    trade = fake.pay(order_id.hex)
    alipay.refund(order_id, "7.50", trade["trade_no"])
    alipay.refund(order_id, "7.50", trade["trade_no"])  # a retry refunds nothing more
    [(request_no, refund)] = [(k, v) for k, v in fake.refunds.items() if order_id.hex in k]
    assert refund["refund_amount"] == "7.50" and refund["trade_no"] == trade["trade_no"]
    calls = fake.calls_of("alipay.trade.refund")
    assert all(c.signature_ok for c in calls)
    assert {c.biz["out_request_no"] for c in calls if c.biz["out_trade_no"] == order_id.hex} == {
        request_no
    }


def test_a_call_signed_with_the_wrong_key_or_answered_by_a_forger_fails_closed(
    fake: FakeAlipay,
) -> None:
    wrong_app_key = AlipayPayments(
        APP_ID,
        new_pair().private_key,
        load_public_key(fake.alipay_keys.public_pem, "ALIPAY_PUBLIC_KEY"),
        notify_url="http://127.0.0.1:9/n",
        gateway=fake.gateway,
        retry_backoff=0,
    )
    with pytest.raises(Unavailable):
        wrong_app_key.start_payment(uuid4(), "1.00", 10, "ALIPAY")
    assert fake.calls[-1].signature_ok is False
    trusting_another_key = AlipayPayments(
        APP_ID,
        load_private_key(fake.app_keys.private_pem, "ALIPAY_PRIVATE_KEY"),
        new_pair().public_key,  # the answers' signatures will not verify
        notify_url="http://127.0.0.1:9/n",
        gateway=fake.gateway,
        retry_backoff=0,
    )
    order_id = uuid4()
    with pytest.raises(Unavailable):
        trusting_another_key.start_payment(order_id, "1.00", 10, "ALIPAY")
    fake.pay(order_id.hex)
    with pytest.raises(Unavailable):  # a "paid" it cannot verify is not believed
        trusting_another_key.query(order_id, "1.00")


def test_the_signing_string_is_alipays() -> None:
    params = {"b": "2", "a": "1", "sign": "x", "sign_type": "RSA2", "c": ""}
    assert signing_string(params, skip_empty=True) == b"a=1&b=2&sign_type=RSA2"
    notify = {k: v for k, v in params.items() if k != "sign_type"}
    assert signing_string(notify, skip_empty=False) == b"a=1&b=2&c="


def test_an_unknown_app_id_gets_alipays_unsigned_error_response_and_a_503(
    fake: FakeAlipay,
) -> None:
    someone_else = AlipayPayments(
        "2021000000000999",
        load_private_key(fake.app_keys.private_pem, "ALIPAY_PRIVATE_KEY"),
        load_public_key(fake.alipay_keys.public_pem, "ALIPAY_PUBLIC_KEY"),
        notify_url="http://127.0.0.1:9/n",
        gateway=fake.gateway,
        retry_backoff=0,
    )
    with pytest.raises(Unavailable) as failed:
        someone_else.start_payment(uuid4(), "1.00", 10, "ALIPAY")
    assert str(failed.value) == MISCONFIGURED_MESSAGE
    assert fake.calls[-1].params["app_id"] == "2021000000000999"
