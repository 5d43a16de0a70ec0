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


# --- a document SDK generators read cleanly ---------------------------------------------------

NAMED = {
    ("/api/videos/generate", "post"): "createVideo",
    ("/api/videos/{video_id}/status", "get"): "getVideoStatus",
    ("/api/videos", "get"): "listVideos",
    ("/api/videos/{video_id}/download", "get"): "downloadVideo",
    ("/api/orders/create", "post"): "createOrder",
    ("/api/orders/{order_id}/pay", "post"): "payOrder",
    ("/api/credits/balance", "get"): "getBalance",
    ("/api/auth/login", "post"): "login",
}


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(p, m, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def test_operation_ids_are_camel_case_names(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", i) for i in ids), ids
    for (path, method), name in NAMED.items():
        assert document["paths"][path][method]["operationId"] == name


def test_enums_are_named_components_with_member_names(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["AspectRatio"]["enum"] == ["16:9", "9:16", "1:1"]
    assert schemas["AspectRatio"]["x-enum-varnames"] == [
        "LANDSCAPE_16_9",
        "PORTRAIT_9_16",
        "SQUARE_1_1",
    ]
    for name in ("VideoState", "OrderStatus", "PaymentMethod", "CreditType", "Role", "Duration"):
        assert len(schemas[name]["x-enum-varnames"]) == len(schemas[name]["enum"]), name

    def inline_enums(node, where):
        if isinstance(node, dict):
            if "enum" in node and where.count("/") > 3:  # inside a property, not a component
                yield where
            for key, value in node.items():
                yield from inline_enums(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from inline_enums(value, f"{where}/{i}")

    assert not list(inline_enums(schemas, "")), "enums must be $refs to named components"
    assert schemas["Video"]["properties"]["status"] == {"$ref": "#/components/schemas/VideoState"}


def test_ids_are_uuids(sqlite_api) -> None:
    with sqlite_api.client() as c:
        schemas = c.get("/api-docs.json").json()["components"]["schemas"]
    for name in ("User", "Video", "VideoStatus", "Order", "Credit"):
        assert schemas[name]["properties"]["id"]["format"] == "uuid", name
    for name in ("Video", "Order", "Credit"):
        assert schemas[name]["properties"]["userId"]["format"] == "uuid", name


def test_binary_and_stream_bodies_are_typed(sqlite_api) -> None:
    with sqlite_api.client() as c:
        paths = c.get("/api-docs.json").json()["paths"]
    binary = {"type": "string", "format": "binary"}
    for path, media in (
        ("/api/videos/{video_id}/download", "video/mp4"),
        ("/api/videos/{video_id}/thumbnail", "image/jpeg"),
        ("/api/share/{token}", "video/mp4"),
        ("/api/share/{token}/thumbnail", "image/jpeg"),
    ):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert content[media]["schema"] == binary, path
        assert content["application/octet-stream"]["schema"] == binary, path
    stream = paths["/api/videos/generate-stream"]["post"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    assert stream["text/event-stream"]["example"].startswith("event: status\ndata: {")


def test_every_body_has_an_example_that_its_schema_takes(sqlite_api) -> None:
    import msgspec

    from sora2.adapters.http import schemas as structs

    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    checked = 0
    for path, method, operation in _operations(document):
        bodies = [operation.get("requestBody") or {}, *operation["responses"].values()]
        for body in bodies:
            for media, content in (body.get("content") or {}).items():
                if content.get("schema", {}).get("format") == "binary":
                    continue
                assert "example" in content or "examples" in content, (path, method, media)
                ref = content.get("schema", {}).get("$ref", "")
                kind = getattr(structs, ref.rsplit("/", 1)[-1], None) if ref else None
                if "example" in content and isinstance(kind, type):
                    msgspec.convert(content["example"], kind)  # the example is a valid body
                    checked += 1
    assert checked > 30


def test_response_headers_are_documented(sqlite_api) -> None:
    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    assert {
        "X-Request-ID",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
        "Idempotent-Replayed",
    } <= set(document["components"]["headers"])
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            headers = response["headers"]
            assert "X-Request-ID" in headers, (path, method, status)
            if path.startswith("/api/") and not path.startswith("/api/payments/"):
                assert "X-RateLimit-Remaining" in headers, (path, method, status)
            if status == "429":
                assert "Retry-After" in headers
    for path, method in PAYING:
        created = document["paths"][path][method]["responses"]
        assert all("Idempotent-Replayed" in r["headers"] for r in created.values()), path


def test_swagger_ui_is_served_from_the_app_itself(sqlite_api) -> None:
    with sqlite_api.client() as c:
        page = c.get("/api-docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert len(assets) >= 3 and all(a.startswith("/api-docs/assets/") for a in assets), assets
        for asset in assets:
            r = c.get(asset)
            assert r.status_code == 200 and len(r.content) > 500, asset
    assert "http" not in "".join(assets)
