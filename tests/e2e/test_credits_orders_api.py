"""/api/credits and /api/orders over real HTTP: balance, history, recharge, orders, payment."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.errors import assert_error

ORDER_FIELDS = {"id", "userId", "amount", "credits", "status", "paymentMethod", "createdAt"}
PAGE_FIELDS = {"items", "total", "page", "limit", "totalPages"}


def balance(c: httpx.Client) -> int:
    r = c.get("/api/credits/balance")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"balance"}
    return r.json()["balance"]


def recharge(c: httpx.Client, credits: int, method: str = "ALIPAY") -> dict[str, Any]:
    r = c.post("/api/credits/recharge", json={"credits": credits, "paymentMethod": method})
    assert r.status_code == 201, r.text
    return r.json()


def create_order(c: httpx.Client, credits: int, method: str = "WECHAT") -> dict[str, Any]:
    r = c.post("/api/orders/create", json={"credits": credits, "paymentMethod": method})
    assert r.status_code == 201, r.text
    return r.json()


def history(c: httpx.Client, **params: Any) -> dict[str, Any]:
    r = c.get("/api/credits/transactions", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# --- credits ---------------------------------------------------------------------------


def test_credit_routes_need_a_bearer_token(api: Api) -> None:
    with api.client() as c:
        assert_error(c.get("/api/credits/balance"), 401, "Unauthorized")
        assert_error(c.get("/api/credits/transactions"), 401, "Unauthorized")
        r = c.post("/api/credits/recharge", json={"credits": 5, "paymentMethod": "ALIPAY"})
        assert_error(r, 401, "Unauthorized")


def test_balance_starts_at_the_signup_bonus(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        assert c.get("/api/credits/balance").json() == {"balance": 10}


@pytest.mark.parametrize(("bonus", "entries"), [("0", []), ("25", [("REWARD", 25, 25)])])
def test_the_signup_bonus_follows_its_setting(
    tmp_path: Path, bonus: str, entries: list[tuple[str, int, int]]
) -> None:
    gen = start_api(sqlite_settings(tmp_path, SIGNUP_BONUS_CREDITS=bonus))
    api = next(gen)
    try:
        _, token = api.register("alice")
        with api.client(token) as c:
            assert balance(c) == int(bonus)
            items = history(c)["items"]
            assert [(e["type"], e["amount"], e["balance"]) for e in items] == entries
            recharge(c, 5)
            assert balance(c) == int(bonus) + 5
    finally:
        gen.close()


def test_recharge_places_a_paid_order_and_credits_it(api: Api) -> None:
    alice, token = api.register("alice")
    with api.client(token) as c:
        body = recharge(c, 50, "STRIPE")
        assert body["provider"] == "sandbox" and body["paid"] is True
        order = body["order"]
        assert set(order) == ORDER_FIELDS | {"paidAt"}
        assert UUID(order["id"])
        assert (order["userId"], order["credits"], order["amount"]) == (alice["id"], 50, 5.0)
        assert (order["status"], order["paymentMethod"]) == ("PAID", "STRIPE")
        assert datetime.fromisoformat(order["paidAt"]) >= datetime.fromisoformat(order["createdAt"])
        assert balance(c) == 60
        page = history(c, type="RECHARGE")
        assert page["total"] == 1
        [entry] = page["items"]
        assert (entry["type"], entry["amount"], entry["balance"]) == ("RECHARGE", 50, 60)
        assert entry["userId"] == alice["id"]
        assert c.get(f"/api/orders/{order['id']}").json() == order


@pytest.mark.parametrize(
    "body",
    [
        {"credits": 10, "paymentMethod": "PAYPAL"},
        {"credits": 10, "paymentMethod": "alipay"},
        {"credits": 10},
        {"credits": 0, "paymentMethod": "ALIPAY"},
        {"credits": -5, "paymentMethod": "ALIPAY"},
        {"credits": 2.5, "paymentMethod": "ALIPAY"},
        {"credits": True, "paymentMethod": "ALIPAY"},
        {"credits": 1_000_001, "paymentMethod": "ALIPAY"},
        {"paymentMethod": "ALIPAY"},
    ],
)
def test_recharge_and_order_refuse_invalid_input(sqlite_api: Api, body: dict[str, Any]) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        for path in ("/api/credits/recharge", "/api/orders/create"):
            r = c.post(path, json=body)
            assert_error(r, 400, "Validation Error")
            field = "paymentMethod" if "credits" in body and body["credits"] == 10 else "credits"
            assert field in r.json()["message"]
        assert balance(c) == 10
        assert c.get("/api/orders").json()["total"] == 0


def test_transactions_are_paged_newest_first_with_running_balances(api: Api) -> None:
    alice, token = api.register("alice")
    with api.client(token) as c:
        for credits in (1, 2, 3, 4):
            recharge(c, credits)
        everything = history(c, limit=100)
        assert set(everything) == PAGE_FIELDS
        assert (everything["total"], everything["page"], everything["limit"]) == (5, 1, 100)
        assert everything["totalPages"] == 1
        items = everything["items"]
        assert [e["amount"] for e in items] == [4, 3, 2, 1, 10]
        assert [e["type"] for e in items] == ["RECHARGE"] * 4 + ["REWARD"]
        assert [e["balance"] for e in items] == [20, 16, 13, 11, 10]
        for newer, older in zip(items, items[1:], strict=False):
            assert newer["balance"] == older["balance"] + newer["amount"]
            assert newer["createdAt"] >= older["createdAt"]
        assert items[0]["balance"] == balance(c)
        for entry in items:
            assert set(entry) == {
                "id",
                "userId",
                "amount",
                "balance",
                "type",
                "description",
                "createdAt",
            }
            assert entry["userId"] == alice["id"]
        assert len({e["id"] for e in items}) == 5

        first, second, third = (history(c, page=p, limit=2) for p in (1, 2, 3))
        assert [p["totalPages"] for p in (first, second, third)] == [3, 3, 3]
        assert [p["total"] for p in (first, second, third)] == [5, 5, 5]
        assert first["items"] + second["items"] + third["items"] == items
        assert (second["page"], second["limit"]) == (2, 2)
        beyond = history(c, page=4, limit=2)
        assert (beyond["items"], beyond["total"], beyond["totalPages"]) == ([], 5, 3)

        assert [e["amount"] for e in history(c, type="REWARD")["items"]] == [10]
        recharges = history(c, type="RECHARGE", limit=3)
        assert (recharges["total"], recharges["totalPages"]) == (4, 2)
        assert [e["amount"] for e in recharges["items"]] == [4, 3, 2]
        empty = history(c, type="CONSUME")
        assert (empty["items"], empty["total"], empty["totalPages"]) == ([], 0, 0)


def test_transactions_default_page_is_20(sqlite_api: Api) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        for _ in range(21):
            recharge(c, 1)
        page = history(c)
        assert (page["page"], page["limit"], page["total"], page["totalPages"]) == (1, 20, 22, 2)
        assert len(page["items"]) == 20
        assert [e["type"] for e in history(c, page=2)["items"]] == ["RECHARGE", "REWARD"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "x"}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"type": "GIFT"}, "type"),
        ({"type": "reward"}, "type"),
    ],
)
def test_transactions_refuse_bad_query_parameters(
    sqlite_api: Api, params: dict[str, Any], field: str
) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        r = c.get("/api/credits/transactions", params=params)
    assert_error(r, 400, "Validation Error")
    assert field in r.json()["message"]


def test_users_see_only_their_own_credits(api: Api) -> None:
    _, alice = api.register("alice")
    bob_user, bob = api.register("bob")
    with api.client(alice) as c:
        recharge(c, 40)
    with api.client(bob) as c:
        assert balance(c) == 10
        page = history(c)
        assert page["total"] == 1
        assert page["items"][0]["userId"] == bob_user["id"]


# --- orders ----------------------------------------------------------------------------


def test_order_routes_need_a_bearer_token(api: Api) -> None:
    order_id = uuid4()
    with api.client() as c:
        r = c.post("/api/orders/create", json={"credits": 5, "paymentMethod": "ALIPAY"})
        assert_error(r, 401, "Unauthorized")
        assert_error(c.get("/api/orders"), 401, "Unauthorized")
        assert_error(c.get(f"/api/orders/{order_id}"), 401, "Unauthorized")
        assert_error(c.post(f"/api/orders/{order_id}/pay"), 401, "Unauthorized")


@pytest.mark.parametrize(
    ("credits", "amount"), [(1, 0.1), (3, 0.3), (7, 0.7), (123, 12.3), (1_000_000, 100_000.0)]
)
def test_create_order_is_pending_and_priced_at_credit_price(
    sqlite_api: Api, credits: int, amount: float
) -> None:
    alice, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        order = create_order(c, credits, "ALIPAY")
        assert set(order) == ORDER_FIELDS  # no paidAt while PENDING
        assert (order["status"], order["credits"], order["amount"]) == ("PENDING", credits, amount)
        assert (order["userId"], order["paymentMethod"]) == (alice["id"], "ALIPAY")
        assert balance(c) == 10  # nothing credited before payment


def test_create_order_answers_201_on_both_backends(api: Api) -> None:
    alice, token = api.register("alice")
    with api.client(token) as c:
        r = c.post("/api/orders/create", json={"credits": 25, "paymentMethod": "WECHAT"})
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["status"], order["amount"], order["userId"]) == ("PENDING", 2.5, alice["id"])


@pytest.fixture
def priced_api(tmp_path: Path) -> Iterator[Api]:
    yield from start_api(sqlite_settings(tmp_path, CREDIT_PRICE="0.25"))


def test_order_amount_follows_the_configured_credit_price(priced_api: Api) -> None:
    _, token = priced_api.register("alice")
    with priced_api.client(token) as c:
        assert create_order(c, 3)["amount"] == 0.75
        assert recharge(c, 10)["order"]["amount"] == 2.5


def test_orders_are_listed_newest_first_with_total(api: Api) -> None:
    _, token = api.register("alice")
    _, bob = api.register("bob")
    with api.client(bob) as c:
        create_order(c, 99)
    with api.client(token) as c:
        placed = [create_order(c, credits) for credits in (1, 2, 3)]
        paid = recharge(c, 4)["order"]
        r = c.get("/api/orders")
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == PAGE_FIELDS
        assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (4, 1, 20, 1)
        assert [o["id"] for o in page["items"]] == [paid["id"]] + [o["id"] for o in placed[::-1]]
        assert page["items"][0] == paid
        assert page["items"][1:] == placed[::-1]

        second = c.get("/api/orders", params={"page": 2, "limit": 3}).json()
        assert (second["total"], second["totalPages"]) == (4, 2)
        assert [o["id"] for o in second["items"]] == [placed[0]["id"]]

        pending = c.get("/api/orders", params={"status": "PENDING"}).json()
        assert pending["total"] == 3
        assert {o["status"] for o in pending["items"]} == {"PENDING"}
        assert_error(c.get("/api/orders", params={"status": "LOST"}), 400, "Validation Error")
        assert_error(c.get("/api/orders", params={"limit": 0}), 400, "Validation Error")


def test_get_order_returns_ones_own_order(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        order = create_order(c, 5)
        r = c.get(f"/api/orders/{order['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == order


def test_another_users_order_does_not_exist_for_you(api: Api) -> None:
    _, alice = api.register("alice")
    _, bob = api.register("bob")
    with api.client(alice) as c:
        order = create_order(c, 5)
    with api.client(bob) as c:
        assert_error(c.get(f"/api/orders/{order['id']}"), 404, "Not Found", "order not found")
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert_error(r, 404, "Not Found", "order not found")
        assert balance(c) == 10
        assert c.get("/api/orders").json()["total"] == 0
    with api.client(alice) as c:
        assert c.get(f"/api/orders/{order['id']}").json()["status"] == "PENDING"
        assert balance(c) == 10


def test_unknown_and_malformed_order_ids_are_404(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        for order_id in (str(uuid4()), "not-a-uuid", "123"):
            assert_error(c.get(f"/api/orders/{order_id}"), 404, "Not Found")
            assert_error(c.post(f"/api/orders/{order_id}/pay"), 404, "Not Found")


def test_pay_marks_the_order_paid_and_credits_exactly_once(api: Api) -> None:
    alice, token = api.register("alice")
    with api.client(token) as c:
        order = create_order(c, 30)
        r = c.post(f"/api/orders/{order['id']}/pay")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["provider"], body["paid"]) == ("sandbox", True)
        paid = body["order"]
        assert set(paid) == ORDER_FIELDS | {"paidAt"}
        assert (paid["id"], paid["status"], paid["credits"]) == (order["id"], "PAID", 30)
        assert paid["createdAt"] == order["createdAt"]
        paid_at = datetime.fromisoformat(paid["paidAt"])
        assert paid_at >= datetime.fromisoformat(order["createdAt"])
        assert abs(datetime.now(paid_at.tzinfo) - paid_at) < timedelta(minutes=1)
        assert balance(c) == 40
        assert c.get(f"/api/orders/{order['id']}").json() == paid

        again = c.post(f"/api/orders/{order['id']}/pay")
        assert_error(again, 409, "Conflict", "this order is already paid")
        assert balance(c) == 40
        recharges = history(c, type="RECHARGE")
        assert recharges["total"] == 1
        assert (recharges["items"][0]["amount"], recharges["items"][0]["balance"]) == (30, 40)


def test_confirming_a_payment_twice_credits_once(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        order = create_order(c, 12)
    order_id = UUID(order["id"])
    assert api.sora2.orders.confirm_payment(order_id, "callback-1") is True
    assert api.sora2.orders.confirm_payment(order_id, "callback-1") is False
    assert api.sora2.orders.confirm_payment(order_id, "callback-2") is False
    with api.client(token) as c:
        assert balance(c) == 22
        assert history(c, type="RECHARGE")["total"] == 1
        assert c.get(f"/api/orders/{order['id']}").json()["status"] == "PAID"
        assert_error(c.post(f"/api/orders/{order['id']}/pay"), 409, "Conflict")
        assert balance(c) == 22


def test_concurrent_payments_of_one_order_credit_it_once(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        order = create_order(c, 25)

    def pay(_: int) -> int:
        with api.client(token) as c:
            return c.post(f"/api/orders/{order['id']}/pay").status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(pay, range(6)))
    assert 200 in statuses and set(statuses) <= {200, 409}, statuses
    with api.client(token) as c:
        assert balance(c) == 35
        assert history(c, type="RECHARGE")["total"] == 1
