"""Paying with WeChat Pay (API v3, Native, public-key mode) against a real `sora2 serve` in
production mode on embedded SQLite.

The server gets its keys from the environment (the merchant key as a file, the platform
public key as PEM text) and talks to a fake WeChat Pay that verifies every call's
Authorization signature and signs its answers. Notifies are signed by the platform key
pair this test generated and their resource encrypted with the APIv3 key; only one that
proves itself, is fresh, and pays exactly a WECHAT order of ours credits it, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from sora2.adapters.payments.keys import load_private_key, load_public_key
from sora2.adapters.payments.wechat import WechatPayments
from sora2.domain.errors import Unavailable
from tests.support.errors import assert_error
from tests.support.fake_wechat import (
    API_V3_KEY,
    APP_ID,
    CERT_SERIAL,
    MCH_ID,
    NATIVE,
    PLATFORM_KEY_ID,
    REFUNDS,
    FakeWechat,
    running_fake_wechat,
)
from tests.support.rsa_keys import new_pair
from tests.support.server_process import ServerProcess, production_env, running_server

NOTIFY = "/api/payments/wechat/notify"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWechat]:
    with running_fake_wechat() as wechat:
        yield wechat


@pytest.fixture(scope="module")
def server(fake: FakeWechat, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("wechat-server")
    merchant_key_file = folder / "apiclient_key.pem"
    merchant_key_file.write_text(fake.merchant_keys.private_pem)
    env = production_env(
        folder,
        WECHAT_MCH_ID=MCH_ID,
        WECHAT_APP_ID=APP_ID,
        WECHAT_API_V3_KEY=API_V3_KEY,
        WECHAT_PRIVATE_KEY=str(merchant_key_file),
        WECHAT_CERT_SERIAL=CERT_SERIAL,
        WECHAT_PLATFORM_PUBLIC_KEY=fake.platform_keys.public_pem,
        WECHAT_PLATFORM_KEY_ID=PLATFORM_KEY_ID,
        WECHAT_API_BASE=fake.base_url,
    )
    with running_server(folder, env) as server:
        yield server


# --- helpers -------------------------------------------------------------------------------


def user(server: ServerProcess, name: str) -> httpx.Client:
    """A newly registered user's client (10 signup credits)."""
    handle = f"{name}-{uuid4().hex[:8]}"
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


def placed_and_paid(c: httpx.Client, fake: FakeWechat, credits: int = 100) -> dict[str, Any]:
    """A WECHAT order paid at the fake: the transaction its notify carries."""
    r = c.post("/api/orders/create", json={"credits": credits, "paymentMethod": "WECHAT"})
    assert r.status_code == 201, r.text
    order = r.json()
    assert c.post(f"/api/orders/{order['id']}/pay").status_code == 200
    return {**fake.public(fake.pay(UUID(order["id"]).hex)), "_order_id": order["id"]}


def deliver(server: ServerProcess, notify: tuple[dict[str, str], bytes]) -> httpx.Response:
    headers, body = notify
    return httpx.post(
        server.base + NOTIFY,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
        trust_env=False,
    )


def transaction_of(paid: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {k: v for k, v in paid.items() if not k.startswith("_")} | changes


# --- paying: a weixin:// code, nothing credited yet ----------------------------------------


def test_paying_answers_the_native_code_url_and_expiry_and_credits_nothing(
    server: ServerProcess, fake: FakeWechat
) -> None:
    with user(server, "qr") as c:
        r = c.post("/api/orders/create", json={"credits": 123, "paymentMethod": "WECHAT"})
        order = r.json()
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert r.status_code == 200, r.text
        answer = r.json()
        assert (answer["provider"], answer["paid"]) == ("wechat", False)
        assert answer["qrCode"].startswith("weixin://wxpay/bizpayurl?pr=")
        created = datetime.fromisoformat(order["createdAt"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(answer["expiresAt"].replace("Z", "+00:00"))
        # ORDER_EXPIRES_IN's default, to the second WeChat Pay takes
        assert timedelta(minutes=30, seconds=-1) < expires - created <= timedelta(minutes=30)

        call = next(
            c for c in fake.calls_to(NATIVE) if c.body["out_trade_no"] == UUID(order["id"]).hex
        )
        assert call.signature_ok  # the fake verified the merchant key's signature
        assert f'mchid="{MCH_ID}"' in call.headers["authorization"]
        assert f'serial_no="{CERT_SERIAL}"' in call.headers["authorization"]
        assert call.headers["wechatpay-serial"] == PLATFORM_KEY_ID
        assert call.body["amount"] == {"total": 1230, "currency": "CNY"}  # fen
        assert (call.body["mchid"], call.body["appid"]) == (MCH_ID, APP_ID)
        assert call.body["notify_url"] == server.base + NOTIFY
        assert datetime.fromisoformat(call.body["time_expire"]) == expires
        assert call.body["time_expire"].endswith("+08:00")

        again = c.post(f"/api/orders/{order['id']}/pay").json()  # clicked twice: same order
        assert again["qrCode"] == answer["qrCode"] and again["expiresAt"] == answer["expiresAt"]
        assert order_of(c, order["id"])["status"] == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0


# --- the notify: verified, fresh, decrypted, matched, credited exactly once ---------------


def test_a_good_notify_credits_once_under_20_parallel_deliveries(
    server: ServerProcess, fake: FakeWechat
) -> None:
    with user(server, "payer") as c:
        paid = placed_and_paid(c, fake)
        notifies = [fake.notify(transaction_of(paid)) for _ in range(20)]
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda n: deliver(server, n), notifies))
        assert [(r.status_code, r.content) for r in answers] == [(204, b"")] * 20
        order = order_of(c, paid["_order_id"])
        assert order["status"] == "PAID" and order["paidAt"]
        assert balance(c) == 110 and recharges(c) == 1

        assert deliver(server, notifies[0]).status_code == 204  # redelivered within 5 minutes
        assert balance(c) == 110 and recharges(c) == 1


def test_a_replayed_notify_from_long_ago_is_refused(
    server: ServerProcess, fake: FakeWechat
) -> None:
    with user(server, "replayed") as c:
        paid = placed_and_paid(c, fake)
        recorded = fake.notify(transaction_of(paid), timestamp=int(time.time()) - 301)
        body = assert_error(deliver(server, recorded), 400)
        assert "5 minutes" in body["message"]
        future = fake.notify(transaction_of(paid), timestamp=int(time.time()) + 600)
        assert_error(deliver(server, future), 400)
        assert order_of(c, paid["_order_id"])["status"] == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0


@pytest.mark.parametrize(
    ("breaking", "why"),
    [
        ("forged", "signature is not WeChat Pay's"),
        ("tampered", "signature is not WeChat Pay's"),
        ("serial", "names a key we do not hold"),
        ("v3 key", "does not decrypt"),
        ("amount", "amount paid is not the order's"),
        ("merchant", "another merchant or app"),
        ("app", "another merchant or app"),
        ("unknown order", "names no order of ours"),
        ("no headers", "Wechatpay-"),
        ("not json", "not JSON"),
    ],
)
def test_a_notify_that_does_not_prove_itself_or_match_the_order_credits_nothing(
    server: ServerProcess, fake: FakeWechat, breaking: str, why: str
) -> None:
    with user(server, "victim") as c:
        paid = placed_and_paid(c, fake)
        good = transaction_of(paid)
        if breaking == "forged":
            notify = fake.notify(good, key=new_pair().private_key)
        elif breaking == "tampered":  # WeChat's signed body, one character changed after
            headers, body = fake.notify(good)
            notify = headers, body.replace(b'"summary"', b'"summarY"')
        elif breaking == "serial":
            notify = fake.notify(good, serial="PUB_KEY_ID_0000000000000000000000000000000000")
        elif breaking == "v3 key":
            notify = fake.notify(good, api_v3_key="z" * 32)
        elif breaking == "amount":
            notify = fake.notify(transaction_of(paid, amount={**good["amount"], "total": 1}))
        elif breaking == "merchant":
            notify = fake.notify(transaction_of(paid, mchid="1900000999"))
        elif breaking == "app":
            notify = fake.notify(transaction_of(paid, appid="wx0000000000000000"))
        elif breaking == "unknown order":
            notify = fake.notify(transaction_of(paid, out_trade_no=uuid4().hex))
        elif breaking == "no headers":
            notify = {}, fake.notify(good)[1]
        else:  # signed by WeChat's key, but no notify
            notify = fake._signed_headers(b"not json"), b"not json"
        r = deliver(server, notify)
        body = assert_error(r, 400)
        assert why in body["message"], body["message"]
        assert order_of(c, paid["_order_id"])["status"] == "PENDING"
        assert balance(c) == 10 and recharges(c) == 0


def test_a_notify_that_reports_no_payment_is_acknowledged_and_credits_nothing(
    server: ServerProcess, fake: FakeWechat
) -> None:
    with user(server, "refundnote") as c:
        paid = placed_and_paid(c, fake)
        r = deliver(server, fake.notify(transaction_of(paid), event_type="REFUND.SUCCESS"))
        assert r.status_code == 204
        r = deliver(server, fake.notify(transaction_of(paid, trade_state="CLOSED")))
        assert r.status_code == 204
        assert order_of(c, paid["_order_id"])["status"] == "PENDING"
        assert balance(c) == 10


def test_the_ledger_verifies_clean_after_all_those_notifies(
    server: ServerProcess, fake: FakeWechat
) -> None:
    with user(server, "audited") as c:
        good = transaction_of(placed_and_paid(c, fake))
        forged = deliver(server, fake.notify(good, key=new_pair().private_key))
        assert forged.status_code == 400  # refused, and logged as every refusal
        assert deliver(server, fake.notify(good)).is_success
        assert balance(c) == 110
    audit = server.sora2("ledger", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "PROBLEM" not in audit.stdout
    log = server.log()
    assert "PRIVATE" not in log and API_V3_KEY not in log  # no secret in the log
    assert "Traceback" not in log and "refused a WeChat Pay notify" in log


# --- query and refund: signed calls WeChat Pay accepts ------------------------------------


def make_wechat(fake: FakeWechat, **changes: Any) -> WechatPayments:
    settings: dict[str, Any] = {
        "mch_id": MCH_ID,
        "app_id": APP_ID,
        "api_v3_key": API_V3_KEY,
        "private_key": load_private_key(fake.merchant_keys.pkcs1_pem, "WECHAT_PRIVATE_KEY"),
        "cert_serial": CERT_SERIAL,
        "platform_public_key": load_public_key(
            fake.platform_keys.public_pem, "WECHAT_PLATFORM_PUBLIC_KEY"
        ),
        "platform_key_id": PLATFORM_KEY_ID,
        "notify_url": "https://example.com/api/payments/wechat/notify",
        "api_base": fake.base_url,
        "retry_backoff": 0,
    }
    return WechatPayments(**(settings | changes))


@pytest.fixture
def wechat(fake: FakeWechat) -> Iterator[WechatPayments]:
    provider = make_wechat(fake)
    yield provider
    provider.close()


def test_query_finds_a_paid_order_of_the_right_amount_only(
    wechat: WechatPayments, fake: FakeWechat
) -> None:
    order_id = uuid4()
    assert wechat.query(order_id, "5.00") is None  # WeChat Pay knows no such order
    wechat.start_payment(order_id, "5.00", 50, "WECHAT")
    assert wechat.query(order_id, "5.00") is None  # NOTPAY
    paid = fake.pay(order_id.hex)
    assert wechat.query(order_id, "5.00") == paid["transaction_id"]
    assert wechat.query(order_id, "50.00") is None  # paid, but not what the order costs
    queries = fake.calls_to(f"/v3/pay/transactions/out-trade-no/{order_id.hex}")
    assert len(queries) == 4 and all(q.signature_ok for q in queries)
    assert all(q.path.endswith(f"?mchid={MCH_ID}") for q in queries)


def test_refund_gives_the_payment_back_once(wechat: WechatPayments, fake: FakeWechat) -> None:
    order_id = uuid4()
    wechat.start_payment(order_id, "7.50", 75, "WECHAT")
    with pytest.raises(Unavailable):  # not paid yet: nothing to refund
        wechat.refund(order_id, "7.50", None)
    paid = fake.pay(order_id.hex)
    wechat.refund(order_id, "7.50", paid["transaction_id"])
    wechat.refund(order_id, "7.50", paid["transaction_id"])  # a retry refunds nothing more
    mine = {k: v for k, v in fake.refunds.items() if k.startswith(order_id.hex)}
    [(refund_no, refund)] = mine.items()
    assert refund["amount"] == {"refund": 750, "total": 750, "currency": "CNY"}
    assert refund["transaction_id"] == paid["transaction_id"]
    calls = [c for c in fake.calls_to(REFUNDS) if c.body.get("out_refund_no") == refund_no]
    assert len(calls) == 3 and all(c.signature_ok for c in calls)


def test_a_call_signed_with_the_wrong_key_or_answered_by_a_forger_fails_closed(
    fake: FakeWechat,
) -> None:
    wrong_key = make_wechat(fake, private_key=new_pair().private_key)
    with pytest.raises(Unavailable):
        wrong_key.start_payment(uuid4(), "1.00", 10, "WECHAT")
    assert fake.calls[-1].signature_ok is False
    order_id = uuid4()
    make_wechat(fake).start_payment(order_id, "1.00", 10, "WECHAT")
    fake.pay(order_id.hex)
    fake.answer_key = new_pair().private_key  # someone in the middle answers "SUCCESS"
    try:
        with pytest.raises(Unavailable):
            make_wechat(fake).query(order_id, "1.00")
    finally:
        fake.answer_key = None


def test_the_api_v3_key_must_be_32_characters(fake: FakeWechat) -> None:
    with pytest.raises(ValueError):
        make_wechat(fake, api_v3_key="short")
