"""Operators as they work: an ADMIN made with `sora2 admin grant` (a separate process, on
the store a running server uses) helps and polices users over /api/admin, and afterwards
`sora2 ledger history` and `verify` show and check what was done."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from litestar.routes import HTTPRoute

from sora2.adapters.http.app import create_app
from sora2.config import Settings
from tests.conftest import Api, start_api
from tests.support.admin_cli import FOREIGN, SORA2, sora2_command, succeeded
from tests.support.backends import base_env, postgres_settings, sqlite_settings
from tests.support.errors import assert_error
from tests.support.server import free_port

PASSWORD = "password123"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def office(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Api, Settings]]:
    """The API (videos stay PENDING: nobody renders) and the settings a CLI needs."""
    if request.param == "sqlite":
        settings = sqlite_settings(tmp_path, VIDEO_JOBS="off")
        yield from _serve(settings)
    else:
        with postgres_settings(tmp_path, VIDEO_JOBS="off") as settings:
            yield from _serve(settings)


def _serve(settings: Settings) -> Iterator[tuple[Api, Settings]]:
    for api in start_api(settings):
        yield api, settings


def login(api: Api, email: str) -> httpx.Response:
    with api.client() as c:
        return c.post("/api/auth/login", json={"email": email, "password": PASSWORD})


def signed_in(api: Api, email: str) -> tuple[str, str]:
    r = login(api, email)
    assert r.status_code == 200, r.text
    cookies = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):
        cookies.load(header)
    return r.json()["accessToken"], cookies["refreshToken"].value


def role_claim(token: str) -> Any:
    return jwt.decode(token, options={"verify_signature": False}).get("role")


def balance(api: Api, token: str) -> int:
    with api.client(token) as c:
        r = c.get("/api/credits/balance")
        assert r.status_code == 200, r.text
        return r.json()["balance"]


def admin_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path) of every route the server has under /api/admin, from its own table."""
    app = create_app(api.sora2)
    return sorted(
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/api/admin")
        for handler in route.route_handlers
        for method in handler.http_methods
        if method not in ("HEAD", "OPTIONS")
    )


def concrete(path: str) -> str:
    return re.sub(r"\{\w+:uuid\}", str(uuid.uuid4()), path)


# --- who may ---------------------------------------------------------------------------------


def test_every_admin_route_refuses_a_user_with_403_and_a_stranger_with_401(sqlite_api) -> None:
    _, token = sqlite_api.register("ursula")
    routes = admin_routes(sqlite_api)
    assert len(routes) >= 8, routes
    bodies = {"POST": {"amount": 5, "reason": "test"}}
    for method, path in routes:
        url = concrete(path)
        with sqlite_api.client(token) as c:
            refused = c.request(method, url, json=bodies.get(method))
        assert_error(refused, 403)
        with sqlite_api.client(token) as c:  # whatever the body: the check comes first
            assert_error(c.request(method, url, content=b"{not json"), 403)
        with sqlite_api.client() as c:
            assert_error(c.request(method, url, json=bodies.get(method)), 401)
        with sqlite_api.client("not-a-token") as c:
            assert_error(c.request(method, url), 401)


def test_admin_routes_are_documented_under_the_admin_tag_with_bearer(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    operations = [
        (path, operation)
        for path, ops in document["paths"].items()
        if path.startswith("/api/admin")
        for operation in ops.values()
    ]
    assert len(operations) == len(admin_routes(sqlite_api))
    for path, operation in operations:
        assert operation["tags"] == ["Admin"], path
        assert operation["security"] == [{"BearerAuth": []}], path
        assert "403" in operation["responses"], path
    body = document["paths"]["/api/admin/users/{user_id}/credits"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert "$ref" in schema or "properties" in schema


# --- the CLI -----------------------------------------------------------------------------------


def test_grant_and_revoke_refuse_bad_input_in_one_line_with_exit_2(
    office: tuple[Api, Settings], tmp_path: Path
) -> None:
    api, settings = office
    for email in ("nobody@example.com", "not-an-email"):
        result = sora2_command(settings, tmp_path, "admin", "grant", "--email", email)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("sora2 admin: "), result.stderr
    result = sora2_command(settings, tmp_path, "admin", "promote", "--email", "a@example.com")
    assert result.returncode == 2


def test_role_changes_by_the_cli_end_sessions_and_change_the_token(
    office: tuple[Api, Settings], tmp_path: Path
) -> None:
    api, settings = office
    user, old = api.register("alice")
    assert role_claim(old) == "USER"
    _, old_refresh = signed_in(api, "alice@example.com")

    out = succeeded(
        sora2_command(settings, tmp_path, "admin", "grant", "--email", "ALICE@example.com")
    )
    assert f"user {user['id']}" in out and "ADMIN" in out

    with api.client(old) as c:
        assert_error(c.get("/api/users/profile"), 401)
    with api.client() as c:
        r = c.post("/api/auth/refresh-token", headers={"Cookie": f"refreshToken={old_refresh}"})
    assert_error(r, 401)
    token, _ = signed_in(api, "alice@example.com")
    assert role_claim(token) == "ADMIN"
    with api.client(token) as c:
        assert c.get("/api/users/profile").json()["role"] == "ADMIN"
        assert c.get("/api/admin/users").status_code == 200

    again = succeeded(
        sora2_command(settings, tmp_path, "admin", "grant", "--email", "alice@example.com")
    )
    assert "already ADMIN" in again
    with api.client(token) as c:  # nothing changed: the session lives on
        assert c.get("/api/admin/users").status_code == 200

    succeeded(sora2_command(settings, tmp_path, "admin", "revoke", "--email", "alice@example.com"))
    with api.client(token) as c:
        assert_error(c.get("/api/admin/users"), 401)
    token, _ = signed_in(api, "alice@example.com")
    assert role_claim(token) == "USER"
    with api.client(token) as c:
        assert_error(c.get("/api/admin/users"), 403)


# --- what an admin does ------------------------------------------------------------------------


def test_an_admin_made_by_the_cli_does_each_action_on_the_record(
    office: tuple[Api, Settings], tmp_path: Path
) -> None:
    api, settings = office
    admin_user, _ = api.register("root")
    bob, bob_token = api.register("bob")
    api.register("carol")
    succeeded(sora2_command(settings, tmp_path, "admin", "grant", "--email", "root@example.com"))
    admin, _ = signed_in(api, "root@example.com")
    admin_id = admin_user["id"]

    with api.client(admin) as c:
        # --- find users, with balances
        page = c.get("/api/admin/users", params={"q": "BO", "limit": 5}).json()
        assert page["total"] == 1 and page["page"] == 1 and page["limit"] == 5
        (found,) = page["items"]
        assert (found["id"], found["email"], found["balance"]) == (bob["id"], bob["email"], 10)
        assert found["role"] == "USER" and found["suspended"] is False
        everyone = c.get("/api/admin/users", params={"limit": 2}).json()
        assert everyone["total"] == 3 and len(everyone["items"]) == 2
        assert everyone["totalPages"] == 2
        assert c.get("/api/admin/users", params={"q": "%"}).json()["total"] == 0  # literal %
        assert_error(c.get("/api/admin/users", params={"limit": 0}), 400)

        # --- correct the balance, either sign, never below zero
        url = f"/api/admin/users/{bob['id']}/credits"
        added = c.post(url, json={"amount": 25, "reason": "goodwill for an outage"})
        assert added.status_code == 201, added.text
        entry = added.json()
        assert entry["type"] == "ADJUSTMENT" and entry["amount"] == 25
        assert entry["balance"] == 35 and entry["adminId"] == admin_id
        assert entry["reason"] == "goodwill for an outage"
        taken = c.post(url, json={"amount": -5, "reason": "duplicate bonus"})
        assert taken.status_code == 201 and taken.json()["balance"] == 30
        assert_error(c.post(url, json={"amount": -31, "reason": "too much"}), 409)
        for bad in (
            {"amount": 0, "reason": "nothing"},
            {"amount": 10**12, "reason": "huge"},
            {"amount": 2.5, "reason": "a fraction"},
            {"amount": 5},
            {"amount": 5, "reason": ""},
            {"amount": 5, "reason": "bell\x07"},
            {"amount": 5, "reason": "ok", "extra": 1},
        ):
            assert_error(c.post(url, json=bad), 400)
        assert_error(
            c.post(f"/api/admin/users/{uuid.uuid4()}/credits", json={"amount": 1, "reason": "x"}),
            404,
        )
    assert balance(api, bob_token) == 30
    with api.client(bob_token) as c:
        mine = c.get("/api/credits/transactions", params={"type": "ADJUSTMENT"}).json()
    assert [(e["amount"], e["balance"]) for e in mine["items"]] == [(-5, 30), (25, 35)]

    # --- any user's video: listed across users, cancelled and refunded
    with api.client(bob_token) as c:
        video = c.post("/api/videos/generate", json={"prompt": "a lighthouse"}).json()
    assert balance(api, bob_token) == 25
    with api.client(admin) as c:
        pending = c.get("/api/admin/videos", params={"status": "PENDING"}).json()
        assert [v["id"] for v in pending["items"]] == [video["id"]]
        assert pending["items"][0]["userId"] == bob["id"] and pending["total"] == 1
        assert c.get("/api/admin/videos", params={"status": "COMPLETED"}).json()["total"] == 0
        assert_error(c.get("/api/admin/videos", params={"status": "LOST"}), 400)
        cancelled = c.post(f"/api/admin/videos/{video['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        assert_error(c.post(f"/api/admin/videos/{video['id']}/cancel"), 409)
        assert_error(c.post(f"/api/admin/videos/{uuid.uuid4()}/cancel"), 404)
    assert balance(api, bob_token) == 30
    with api.client(bob_token) as c:
        assert c.get(f"/api/videos/{video['id']}").json()["status"] == "CANCELLED"

    # --- one user's page
    with api.client(admin) as c:
        detail = c.get(f"/api/admin/users/{bob['id']}").json()
        assert detail["id"] == bob["id"] and detail["balance"] == 30
        assert [e["type"] for e in detail["transactions"]] == [
            "REFUND",
            "CONSUME",
            "ADJUSTMENT",
            "ADJUSTMENT",
            "REWARD",
        ]
        assert [v["id"] for v in detail["videos"]] == [video["id"]]
        assert detail["orders"] == []
        assert_error(c.get(f"/api/admin/users/{uuid.uuid4()}"), 404)

    # --- suspend: sessions end, sign-in refused, until unsuspended
    _, bob_refresh = signed_in(api, "bob@example.com")
    with api.client(admin) as c:
        r = c.post(f"/api/admin/users/{bob['id']}/suspend", json={"reason": "spam"})
        assert r.status_code == 200, r.text
        assert r.json()["suspended"] is True and r.json()["balance"] == 30
        assert_error(c.post(f"/api/admin/users/{bob['id']}/suspend"), 409)
        assert_error(c.post(f"/api/admin/users/{admin_id}/suspend"), 409)  # not oneself
    with api.client(bob_token) as c:
        assert_error(c.get("/api/credits/balance"), 401)
    with api.client() as c:
        refreshed = c.post(
            "/api/auth/refresh-token", headers={"Cookie": f"refreshToken={bob_refresh}"}
        )
    assert refreshed.status_code in (401, 403), refreshed.text
    assert_error(login(api, "bob@example.com"), 403)
    with api.client(admin) as c:
        assert c.get("/api/admin/users", params={"q": "bob"}).json()["items"][0]["suspended"]
        r = c.post(f"/api/admin/users/{bob['id']}/unsuspend")
        assert r.status_code == 200 and r.json()["suspended"] is False
        assert_error(c.post(f"/api/admin/users/{bob['id']}/unsuspend"), 409)
    bob_token, _ = signed_in(api, "bob@example.com")
    assert balance(api, bob_token) == 30

    # --- refund an order on the admin's word: its credits taken back while unspent
    def recharge(credits: int) -> str:
        with api.client(bob_token) as c:
            r = c.post(
                "/api/credits/recharge", json={"credits": credits, "paymentMethod": "STRIPE"}
            )
            assert r.status_code == 201 and r.json()["order"]["status"] == "PAID", r.text
            return r.json()["order"]["id"]

    first = recharge(40)
    assert balance(api, bob_token) == 70
    with api.client(admin) as c:
        refunded = c.post(f"/api/admin/orders/{first}/refund", json={"reason": "asked by bob"})
        assert refunded.status_code == 200, refunded.text
        assert refunded.json()["status"] == "REFUNDED"
        assert_error(c.post(f"/api/admin/orders/{first}/refund"), 409)
        assert_error(c.post(f"/api/admin/orders/{uuid.uuid4()}/refund"), 404)
    assert balance(api, bob_token) == 30
    second = recharge(40)
    with api.client(bob_token) as c:  # 40 of the 70 held by two videos in progress
        spent = [
            c.post("/api/videos/generate", json={"prompt": f"clip {n}", "duration": 20}).json()
            for n in range(2)
        ]
    with api.client(admin) as c:
        assert_error(c.post(f"/api/admin/orders/{second}/refund"), 409)  # 30 unspent < 40
        orders = c.get(f"/api/admin/users/{bob['id']}").json()["orders"]
        assert [(o["id"], o["status"]) for o in orders] == [(second, "PAID"), (first, "REFUNDED")]
        for video in spent:
            assert c.post(f"/api/admin/videos/{video['id']}/cancel").status_code == 200
    assert balance(api, bob_token) == 70
    refund_events = _order_events(api, first)
    assert [(str(e.admin_id), e.reason) for e in refund_events] == [(admin_id, "asked by bob")]

    # --- on the record: the auditors' replay shows and checks it all
    history = succeeded(sora2_command(settings, tmp_path, "ledger", "history", "--user", bob["id"]))
    adjustments = [line for line in history.splitlines() if "ADJUSTMENT" in line]
    assert len(adjustments) == 2, history
    assert "+25" in adjustments[0] and f"by admin {admin_id}" in adjustments[0]
    assert "goodwill for an outage" in adjustments[0]
    assert "-5" in adjustments[1] and f"by admin {admin_id}" in adjustments[1]
    assert "Balance: 70 credits after 12 entries" in history
    assert [line.split()[2] for line in history.splitlines()[2:-1]] == [
        "REWARD",
        "ADJUSTMENT",
        "ADJUSTMENT",
        "CONSUME",
        "REFUND",
        "RECHARGE",
        "REVERSAL",
        "RECHARGE",
        "CONSUME",
        "CONSUME",
        "REFUND",
        "REFUND",
    ]
    verified = succeeded(sora2_command(settings, tmp_path, "ledger", "verify"))
    assert verified.startswith("OK: 3 users, 14 entries"), verified
    events = _user_events(api, bob["id"])
    assert [(type(e).__name__, str(e.admin_id)) for e in events] == [
        ("Suspended", admin_id),
        ("Unsuspended", admin_id),
    ]


def _user_events(api: Api, user_id: str) -> list[Any]:
    from sora2.domain.users.user import User

    events = api.sora2.log.events.get(uuid.UUID(user_id))
    return [e for e in events if isinstance(e, User.Suspended | User.Unsuspended)]


def _order_events(api: Api, order_id: str) -> list[Any]:
    from sora2.domain.orders.order import Order

    return [
        e for e in api.sora2.log.events.get(uuid.UUID(order_id)) if isinstance(e, Order.Refunded)
    ]


def wait_until(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


# --- a server process and the CLI on one SQLite store ---------------------------------------


def test_grant_from_the_cli_while_a_server_process_serves_the_same_sqlite_store(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = sqlite_settings(tmp_path, VIDEO_JOBS="off")
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env.update(base_env(tmp_path, PUBLIC_URL=base, VIDEO_JOBS="off"))
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [str(SORA2), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def up() -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{base}/health", trust_env=False).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as c:
            r = c.post(
                "/api/auth/register",
                json={"email": "op@example.com", "password": PASSWORD, "username": "operator"},
            )
            assert r.status_code == 201, r.text
            old = r.json()["accessToken"]
            headers = {"Authorization": f"Bearer {old}"}
            assert_error(c.get("/api/admin/users", headers=headers), 403)

            succeeded(
                sora2_command(settings, tmp_path, "admin", "grant", "--email", "op@example.com")
            )

            assert_error(c.get("/api/users/profile", headers=headers), 401)
            r = c.post("/api/auth/login", json={"email": "op@example.com", "password": PASSWORD})
            assert r.status_code == 200, r.text
            assert r.json()["user"]["role"] == "ADMIN"
            token = r.json()["accessToken"]
            assert role_claim(token) == "ADMIN"
            page = c.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})
            assert page.status_code == 200, page.text
            assert [u["email"] for u in page.json()["items"]] == ["op@example.com"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
