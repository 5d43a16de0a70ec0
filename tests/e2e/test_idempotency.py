"""Idempotency-Key on the POSTs that create or pay: a retried request never charges twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def test_same_key_replays_the_first_order(api) -> None:
    _, token = api.register("ida")
    headers = {"Idempotency-Key": "order-1"}
    body = {"credits": 40, "paymentMethod": "ALIPAY"}
    with api.client(token) as c:
        first = c.post("/api/orders/create", json=body, headers=headers)
        again = c.post("/api/orders/create", json=body, headers=headers)
        orders = c.get("/api/orders").json()
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert orders["total"] == 1


def test_same_key_with_another_body_is_a_conflict(api) -> None:
    _, token = api.register("ivo")
    headers = {"Idempotency-Key": "k"}
    with api.client(token) as c:
        assert (
            c.post(
                "/api/orders/create",
                json={"credits": 1, "paymentMethod": "STRIPE"},
                headers=headers,
            ).status_code
            == 201
        )
        r = c.post(
            "/api/orders/create", json={"credits": 2, "paymentMethod": "STRIPE"}, headers=headers
        )
    assert r.status_code == 409
    assert r.json() == {
        "error": "Conflict",
        "statusCode": 409,
        "message": "this Idempotency-Key was used with a different request",
    }


def test_a_retried_generate_charges_once(sqlite_api) -> None:
    api = sqlite_api
    _, token = api.register("gus")
    headers = {"Idempotency-Key": "video-attempt-1"}
    with api.client(token) as c:
        first = c.post("/api/videos/generate", json={"prompt": "rain"}, headers=headers)
        again = c.post("/api/videos/generate", json={"prompt": "rain"}, headers=headers)
        assert first.status_code == 201 and again.json()["id"] == first.json()["id"]
        assert c.get("/api/videos").json()["total"] == 1
        consumes = c.get("/api/credits/transactions", params={"type": "CONSUME"}).json()
    assert consumes["total"] == 1


def test_keys_belong_to_their_user(sqlite_api) -> None:
    api = sqlite_api
    _, ann = api.register("ann")
    _, ben = api.register("ben")
    body = {"credits": 5, "paymentMethod": "WECHAT"}
    with api.client(ann) as a, api.client(ben) as b:
        ra = a.post("/api/orders/create", json=body, headers={"Idempotency-Key": "same"})
        rb = b.post("/api/orders/create", json=body, headers={"Idempotency-Key": "same"})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]
    assert "idempotent-replayed" not in rb.headers


def test_concurrent_recharges_with_one_key_credit_once(api) -> None:
    _, token = api.register("cyd")
    body = {"credits": 30, "paymentMethod": "STRIPE"}

    def recharge(_: int) -> int:
        with api.client(token) as c:
            r = c.post("/api/credits/recharge", json=body, headers={"Idempotency-Key": "pay-1"})
            return r.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(recharge, range(8)))
    with api.client(token) as c:
        balance = c.get("/api/credits/balance").json()["balance"]
        recharges = c.get("/api/credits/transactions", params={"type": "RECHARGE"}).json()
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}  # replays, or "still being processed"
    assert balance == 10 + 30
    assert recharges["total"] == 1


def test_a_bad_key_is_refused(sqlite_api) -> None:
    _, token = sqlite_api.register("kim")
    with sqlite_api.client(token) as c:
        r = c.post(
            "/api/orders/create",
            json={"credits": 1, "paymentMethod": "STRIPE"},
            headers={"Idempotency-Key": "x" * 256},
        )
    assert r.status_code == 400
    assert r.json()["statusCode"] == 400


def test_a_stream_with_a_key_runs_to_its_end_and_replays_to_the_same_end(sqlite_api) -> None:
    api = sqlite_api
    _, token = api.register("sse")
    headers = {"Idempotency-Key": "stream-1"}
    with api.client(token) as c:
        first = c.post("/api/videos/generate-stream", json={"prompt": "waves"}, headers=headers)
        again = c.post("/api/videos/generate-stream", json={"prompt": "waves"}, headers=headers)
        videos = c.get("/api/videos").json()
    assert first.status_code == 200
    assert '"status":"COMPLETED"' in first.text  # the stream was not cut short
    # the replay follows the same video to the same end (not the bytes: a stream cut short
    # would replay only up to the cut)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    last = lambda text: [x for x in text.splitlines() if x.startswith("id:")][-1]  # noqa: E731
    assert last(again.text) == last(first.text)
    assert videos["total"] == 1


def test_a_huge_body_with_a_key_is_refused_without_reading_it_all(sqlite_api) -> None:
    _, token = sqlite_api.register("big")
    with sqlite_api.client(token) as c:
        r = c.post(
            "/api/orders/create",
            content=b"x" * (2 * 1024 * 1024),
            headers={"Idempotency-Key": "big", "Content-Type": "application/json"},
        )
    assert r.status_code == 413
    assert r.json()["statusCode"] == 413
