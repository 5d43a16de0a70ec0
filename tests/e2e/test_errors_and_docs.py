"""Error bodies, probes, CORS and the OpenAPI document, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.errors import assert_error

ERROR_REF = "#/components/schemas/ErrorBody"
FRONTEND = "http://localhost:3000"

# (method, path) -> (request body schema, success status, response schema, errors, needs Bearer)
ROUTES: dict[tuple[str, str], tuple[str | None, str, str, set[int], bool]] = {
    ("post", "/api/auth/register"): ("RegisterRequest", "201", "AuthResponse", {400, 409}, False),
    ("post", "/api/auth/login"): ("LoginRequest", "200", "AuthResponse", {400, 401}, False),
    ("post", "/api/auth/logout"): (None, "200", "Message", {401}, True),
    ("post", "/api/auth/refresh-token"): (None, "200", "AccessTokenResponse", {401}, False),
    ("post", "/api/auth/forgot-password"): (
        "ForgotPasswordRequest",
        "200",
        "Message",
        {400},
        False,
    ),
    ("post", "/api/auth/reset-password"): (
        "ResetPasswordRequest",
        "200",
        "Message",
        {400, 401},
        False,
    ),
    ("get", "/api/users/profile"): (None, "200", "User", {401}, True),
    ("put", "/api/users/profile"): ("UpdateProfileRequest", "200", "User", {400, 401, 409}, True),
    ("put", "/api/users/password"): (
        "ChangePasswordRequest",
        "200",
        "PasswordChanged",
        {400, 401},
        True,
    ),
    ("post", "/api/users/avatar"): ("AvatarUpload", "200", "User", {400, 401, 413, 415}, True),
    ("get", "/api/credits/balance"): (None, "200", "Balance", {401}, True),
    ("get", "/api/credits/transactions"): (None, "200", "CreditPage", {400, 401}, True),
    ("post", "/api/credits/recharge"): ("OrderRequest", "201", "Payment", {400, 401}, True),
    ("post", "/api/orders/create"): ("OrderRequest", "201", "Order", {400, 401}, True),
    ("get", "/api/orders"): (None, "200", "OrderPage", {400, 401}, True),
    ("get", "/api/orders/{order_id}"): (None, "200", "Order", {401, 404}, True),
    ("post", "/api/orders/{order_id}/pay"): (None, "200", "Payment", {401, 404, 409}, True),
}


@pytest.fixture
def openapi(sqlite_api: Api) -> dict[str, Any]:
    with sqlite_api.client() as c:
        r = c.get("/api-docs.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- error bodies ----------------------------------------------------------------------


def test_an_unknown_route_is_404_in_the_error_shape(api: Api) -> None:
    with api.client() as c:
        assert_error(
            c.get("/api/nothing-here"), 404, "Not Found", "no route for GET /api/nothing-here"
        )
        assert_error(c.post("/api/auth/unknown", json={}), 404, "Not Found")
        assert_error(c.get("/nothing"), 404, "Not Found")


def test_a_wrong_method_is_405_in_the_error_shape(api: Api) -> None:
    with api.client() as c:
        r = c.get("/api/auth/login")
        assert_error(r, 405, "Method Not Allowed", "GET is not allowed on /api/auth/login")
        assert set(r.headers["allow"].replace(" ", "").split(",")) == {"OPTIONS", "POST"}
        assert_error(c.delete("/api/users/profile"), 405, "Method Not Allowed")
        assert_error(c.put("/api/credits/balance"), 405, "Method Not Allowed")


def test_a_json_body_over_1_mb_is_413_in_the_error_shape(sqlite_api: Api) -> None:
    padding = "x" * (1024 * 1024)
    body = {"email": "alice@example.com", "password": "password123", "username": padding}
    with sqlite_api.client() as c:
        r = c.post("/api/auth/register", json=body)
    assert_error(r, 413, "Request Entity Too Large")


def test_an_unexpected_failure_is_500_without_a_trace(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = sqlite_api.register("alice")

    def broken(user_id: Any) -> int:
        raise RuntimeError("secret internals: /srv/db password=hunter2")

    monkeypatch.setattr(sqlite_api.sora2.credits, "balance", broken)
    with sqlite_api.client(token) as c:
        r = c.get("/api/credits/balance")
    assert_error(r, 500, "Internal Server Error", "Something went wrong on our side.")
    assert "hunter2" not in r.text and "Traceback" not in r.text


# --- probes ----------------------------------------------------------------------------


def test_health_and_ready_answer_200(api: Api) -> None:
    with api.client() as c:
        health, ready = c.get("/health"), c.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    processors = {p["name"]: p for p in ready.json()["processors"]}
    assert set(processors) >= {"sora2/read-models", "sora2/job-dispatch"}
    assert not any("stuck" in p for p in processors.values())


# --- CORS ------------------------------------------------------------------------------


def test_a_preflight_from_the_frontend_is_allowed_with_credentials(api: Api) -> None:
    with api.client() as c:
        r = c.options(
            "/api/auth/login",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization, idempotency-key",
            },
        )
    assert r.status_code in (200, 204), r.text
    assert r.headers["access-control-allow-origin"] == FRONTEND
    assert r.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "authorization", "idempotency-key"} <= allowed


def test_a_request_from_the_frontend_exposes_the_rate_limit_headers(api: Api) -> None:
    with api.client() as c:
        r = c.get("/health", headers={"Origin": FRONTEND})
    assert r.headers["access-control-allow-origin"] == FRONTEND
    assert r.headers["access-control-allow-credentials"] == "true"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"} <= (
        exposed
    )


def test_another_origin_is_not_allowed(api: Api) -> None:
    with api.client() as c:
        preflight = c.options(
            "/api/auth/login",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        simple = c.get("/health", headers={"Origin": "https://evil.example"})
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


@pytest.fixture
def app_frontend_api(tmp_path: Path) -> Iterator[Api]:
    yield from start_api(sqlite_settings(tmp_path, FRONTEND_URL="https://app.example.com/"))


def test_cors_follows_frontend_url(app_frontend_api: Api) -> None:
    with app_frontend_api.client() as c:
        ours = c.get("/health", headers={"Origin": "https://app.example.com"})
        default = c.get("/health", headers={"Origin": FRONTEND})
    assert ours.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in default.headers


# --- docs ------------------------------------------------------------------------------


def test_api_docs_serves_swagger_ui(sqlite_api: Api) -> None:
    with sqlite_api.client() as c:
        r = c.get("/api-docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in r.text.lower()
    assert "SwaggerUIBundle" in r.text
    assert "Sora2 API" in r.text


def test_openapi_is_version_3_with_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.")
    assert openapi["info"]["title"] == "Sora2 API"
    assert openapi["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    error = openapi["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error", "message", "statusCode", "details"}
    assert set(error["required"]) == {"error", "message", "statusCode"}
    assert error["properties"]["statusCode"]["type"] == "integer"


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_openapi_describes_each_route(openapi: dict[str, Any], method: str, path: str) -> None:
    request, status, response, errors, secured = ROUTES[(method, path)]
    assert path in openapi["paths"], sorted(openapi["paths"])
    operation = openapi["paths"][path][method]
    assert operation.get("summary")
    if request is None:
        assert "requestBody" not in operation
    else:
        content = operation["requestBody"]["content"]
        media = "multipart/form-data" if request == "AvatarUpload" else "application/json"
        assert list(content) == [media]
        assert content[media]["schema"] == ref(request)
        assert request in openapi["components"]["schemas"]
    responses = operation["responses"]
    assert responses[status]["content"]["application/json"]["schema"] == ref(response)
    assert response in openapi["components"]["schemas"]
    # every /api route is rate limited, so 429 belongs to each
    assert errors | {429} <= {int(s) for s in responses if int(s) >= 400}
    for code, answer in responses.items():
        if int(code) < 400:
            continue
        media = answer["content"]["application/json"]
        assert media["schema"] == {"$ref": ERROR_REF}, (code, media["schema"])
        assert answer["description"]
        for example in (media.get("examples") or {}).values():
            assert example["value"]["statusCode"] == int(code), example
    if secured:
        assert operation["security"] == [{"BearerAuth": []}]
    else:
        assert not operation.get("security")


def test_openapi_documents_the_parameters(openapi: dict[str, Any]) -> None:
    def params(method: str, path: str) -> dict[str, dict[str, Any]]:
        operation = openapi["paths"][path][method]
        return {p["name"]: p for p in operation.get("parameters", [])}

    transactions = params("get", "/api/credits/transactions")
    assert {n: p["in"] for n, p in transactions.items()} == {
        "page": "query",
        "limit": "query",
        "type": "query",
    }
    assert {"$ref": "#/components/schemas/CreditType"} in transactions["type"]["schema"]["oneOf"]
    assert "REWARD" in openapi["components"]["schemas"]["CreditType"]["enum"]
    assert {"page", "limit", "status"} <= set(params("get", "/api/orders"))
    for method, path in (("get", "/api/orders/{order_id}"), ("post", "/api/orders/{order_id}/pay")):
        order_id = params(method, path)["order_id"]
        assert (order_id["in"], order_id["required"]) == ("path", True)
        assert order_id["schema"]["format"] == "uuid"
    assert params("post", "/api/auth/refresh-token")["refreshToken"]["in"] == "cookie"


def test_openapi_error_examples_are_real_errors(openapi: dict[str, Any]) -> None:
    """Generated placeholder examples (random words, statusCode 2562) would mislead SDK users."""
    error = openapi["components"]["schemas"]["ErrorBody"]
    for example in error.get("examples", []):
        assert 400 <= example["statusCode"] <= 599, example


def test_openapi_operation_ids_are_unique(openapi: dict[str, Any]) -> None:
    ids = [
        op["operationId"]
        for item in openapi["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert len(ids) == len(set(ids))
