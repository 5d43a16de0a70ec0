"""Which provider takes a payment: the sandbox in development, never in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora2.config import ConfigError, Settings
from tests.conftest import start_api
from tests.support.backends import sqlite_settings

STRONG = {
    "JWT_SECRET": "kR7vQ2mX9pL4tW8zN1bC6hF3jD5sG0aE-yU",
    "JWT_REFRESH_SECRET": "Zq8v3mN0pLr5tY7wXa2bC4dE6fG9hJkLmNo",
}


def production(tmp_path: Path, **env: str) -> Settings:
    return sqlite_settings(tmp_path, NODE_ENV="production", **STRONG, **env)


def test_production_has_no_sandbox_and_refuses_to_start_with_it(tmp_path: Path) -> None:
    assert production(tmp_path).payments_sandbox is False
    assert production(tmp_path, PAYMENTS_SANDBOX="false").payments_sandbox is False
    with pytest.raises(ConfigError, match="PAYMENTS_SANDBOX"):
        production(tmp_path, PAYMENTS_SANDBOX="true")
    assert sqlite_settings(tmp_path).payments_sandbox is True


@pytest.mark.parametrize("route", ["pay", "recharge"])
def test_a_method_without_a_provider_answers_503_and_credits_nothing(
    tmp_path: Path, route: str
) -> None:
    run = start_api(production(tmp_path))
    api = next(run)
    try:
        _, token = api.register("payer")
        with api.client(token) as c:
            body = {"credits": 100, "paymentMethod": "ALIPAY"}
            if route == "pay":
                order = c.post("/api/orders/create", json=body).json()
                r = c.post(f"/api/orders/{order['id']}/pay")
                assert c.get(f"/api/orders/{order['id']}").json()["status"] == "PENDING"
            else:
                r = c.post("/api/credits/recharge", json=body)
            assert r.status_code == 503
            assert r.json() == {
                "error": "Service Unavailable",
                "statusCode": 503,
                "message": "ALIPAY payments are not available yet",
            }
            assert c.get("/api/credits/balance").json() == {"balance": 10}
    finally:
        run.close()
