"""/api-docs.json tells the truth about every route the server has."""

from __future__ import annotations

import re

from litestar.routes import HTTPRoute

from sora2.adapters.http.app import create_app

PAYING = {
    ("/api/videos/generate", "post"),
    ("/api/videos/generate-stream", "post"),
    ("/api/videos/{video_id}/regenerate", "post"),
    ("/api/orders/create", "post"),
    ("/api/orders/{order_id}/pay", "post"),
    ("/api/credits/recharge", "post"),
}


def test_every_error_response_is_documented_in_the_error_shape(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    # the error shape, or one that adds to it (/ready's 503 adds `checks`)
                    name = schema["$ref"].rsplit("/", 1)[-1]
                    required = set(document["components"]["schemas"][name]["required"])
                    assert required >= {"error", "message", "statusCode"}, (path, method, status)
                    checked += 1
    assert checked > 50
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "message", "statusCode"}


def test_every_route_of_the_app_is_in_the_document(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    documented = {(p, m) for p, ops in document["paths"].items() for m in ops}
    app = create_app(sqlite_api.sora2)  # the server's own route table
    served = {
        (_openapi_path(route.path), method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute) and not route.path.startswith("/api-docs")
        for handler in route.route_handlers
        if handler.include_in_schema
        for method in handler.http_methods
        if method not in ("HEAD", "OPTIONS")
    }
    assert len(served) > 30
    assert served <= documented, served - documented


def _openapi_path(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def test_paying_posts_document_the_idempotency_key(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    for path, method in PAYING:
        names = [p["name"] for p in document["paths"][path][method].get("parameters", [])]
        assert "Idempotency-Key" in names, path
    assert document["paths"]["/api/videos/{video_id}/status"]["get"]["security"] == [
        {"BearerAuth": []}
    ]
