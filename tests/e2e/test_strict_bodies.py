"""Bodies are read as sent: numbers are JSON numbers, unknown fields are refused, each problem
is named; an Idempotency-Key compares the request as parsed, not its bytes."""

from __future__ import annotations

import json

import pytest

from tests.support.errors import assert_error


def _details(r) -> dict[str, str]:
    error = assert_error(r, 400, "Validation Error")
    return {d["field"]: d["message"] for d in error["details"]}


@pytest.mark.parametrize("credits", ["5", "1e3", "1000", 5.5, True, None])
def test_credits_must_be_a_json_integer(sqlite_api, credits) -> None:
    _, token = sqlite_api.register("nina")
    with sqlite_api.client(token) as c:
        for path in ("/api/orders/create", "/api/credits/recharge"):
            r = c.post(path, json={"credits": credits, "paymentMethod": "ALIPAY"})
            assert list(_details(r)) == ["credits"], r.text
            assert "credits" in r.json()["message"]
        assert c.get("/api/orders").json()["total"] == 0
        bonus = sqlite_api.sora2.settings.signup_bonus_credits
        assert c.get("/api/credits/balance").json()["balance"] == bonus  # nothing bought


def test_duration_as_a_string_is_refused_and_nothing_is_charged(sqlite_api) -> None:
    _, token = sqlite_api.register("dora")
    with sqlite_api.client(token) as c:
        r = c.post("/api/videos/generate", json={"prompt": "rain", "duration": "5"})
        assert list(_details(r)) == ["duration"]
        assert c.get("/api/videos").json()["total"] == 0


def test_unknown_fields_are_refused_by_name(sqlite_api) -> None:
    _, token = sqlite_api.register("uma")
    with sqlite_api.client(token) as c:
        r = c.post(
            "/api/videos/generate",
            json={"prompt": "rain", "colour": "red", "discount": 100},
        )
        details = _details(r)
        assert set(details) == {"colour", "discount"}
        assert "colour" in r.json()["message"] and "discount" in r.json()["message"]
        assert c.get("/api/videos").json()["total"] == 0


def test_every_problem_of_a_body_is_listed(sqlite_api) -> None:
    with sqlite_api.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": "not an email", "password": 12345678, "nickname": "x"},
        )
    details = _details(r)
    assert set(details) == {"email", "password", "nickname", "username"}, details
    assert details["username"] == "is required"
    assert "str" in details["password"]


def test_a_body_that_is_not_an_object_is_a_400(sqlite_api) -> None:
    with sqlite_api.client() as c:
        for body in ("[]", '"x"', "5"):
            r = c.post(
                "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
            )
            assert_error(r, 400)


def test_a_valid_body_still_works(sqlite_api) -> None:
    _, token = sqlite_api.register("vic")
    with sqlite_api.client(token) as c:
        r = c.post("/api/orders/create", json={"credits": 5, "paymentMethod": "ALIPAY"})
        assert r.status_code == 201, r.text
        assert r.json()["credits"] == 5


def test_the_same_json_spaced_and_ordered_otherwise_is_a_replay(sqlite_api) -> None:
    _, token = sqlite_api.register("ike")
    key = {"Idempotency-Key": "order-7", "Content-Type": "application/json"}
    first_bytes = json.dumps({"credits": 40, "paymentMethod": "ALIPAY"})
    other_bytes = '{\n  "paymentMethod" : "ALIPAY",\n  "credits":40\n}'
    with sqlite_api.client(token) as c:
        first = c.post("/api/orders/create", content=first_bytes, headers=key)
        again = c.post("/api/orders/create", content=other_bytes, headers=key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert c.get("/api/orders").json()["total"] == 1
        other = c.post(
            "/api/orders/create", content='{"paymentMethod":"ALIPAY","credits":41}', headers=key
        )
        assert_error(other, 409, "Conflict")
