"""The OpenAPI document and Swagger UI: what SDK generators and a browser need from them.

Litestar writes the document from the handlers; `finish` adds what it cannot say there, for
every route alike (so new controllers get it too): enum member names (`x-enum-varnames`, or
"16:9" becomes VALUE_0), binary bodies typed as such (beside `application/octet-stream`,
which generators map to bytes), `text/event-stream` for handlers that stream, an example on
every body, and the headers answers carry. Operation ids are the handlers' names in
camelCase (`create_video` → `createVideo`). Swagger UI's files come from the pinned
`swagger-ui-py` package and are served by the app: the page works with no internet.
"""

from __future__ import annotations

import copy
import enum
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.response import ServerSentEvent
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.types import Method

from sora2.adapters.http import examples, schemas
from sora2.adapters.http.rate_limit import rule_for

DOCS_PATH = "/api-docs"
ASSETS_PATH = "/api-docs/assets"
SWAGGER_FILES = Path(str(files("swagger_ui") / "static"))

DESCRIPTION = (
    "Sora2 turns text prompts into videos. Buy credits through orders, spend them to "
    "generate videos, follow progress live (SSE), download and share. Every error answers "
    "`{error, message, statusCode}` (a 400 may add `details: [{field, message}]`), also a "
    "request the server refuses before any route: 400 for a malformed request line or a "
    "control character in a header, 431 for a request head over 16 KiB. "
    "Authenticate with `Authorization: Bearer <accessToken>`; the refresh token travels in "
    "the HttpOnly `refreshToken` cookie. Every response carries `X-Request-ID` (yours, if you "
    "send a usable one: up to 128 of `A-Za-z0-9-_.:/+=@`), which the server's log lines of "
    "that request carry too."
)
BINARY = {"type": "string", "format": "binary"}
BINARY_TYPES = re.compile(r"^(video|image|audio)/|^application/octet-stream$")
STREAM = "text/event-stream"

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the client's own, or a new one): quote it in reports",
        "schema": {"type": "string"},
        "example": "3f2b8c1e9d4a4b7f",
    },
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the current window",
        "schema": {"type": "integer"},
        "example": 100,
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window",
        "schema": {"type": "integer"},
        "example": 99,
    },
    "X-RateLimit-Reset": {
        "description": "When the window ends (Unix time, seconds)",
        "schema": {"type": "integer"},
        "example": 1796117400,
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
        "example": 60,
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the kept answer to an earlier request with the same "
        "Idempotency-Key (nothing was done again)",
        "schema": {"type": "string"},
        "example": "true",
    },
}


def operation_id(handler: HTTPRouteHandler, method: Method, path: list[Any]) -> str:
    """`create_video` → `createVideo`: the name a generated SDK gives the call. A controller
    whose handlers share names with others' sets `opt={"operation_prefix": "admin"}`."""
    words = [handler.opt.get("operation_prefix", ""), *handler.handler_name.split("_")]
    head, *rest = [w for w in words if w]
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


class SwaggerUI(SwaggerRenderPlugin):
    """Swagger UI 5 from the app's own files, showing the finished document."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
            path="/",
        )

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, document(request.app))


class FinishedJson(JsonRenderPlugin):
    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, document(request.app))


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Sora2 API",
        version="1.0.0",
        description=DESCRIPTION,
        path=DOCS_PATH,
        render_plugins=[SwaggerUI(), FinishedJson()],
        operation_id_creator=operation_id,
        # relative: "Try it out" goes to the origin that served the page, behind any proxy
        servers=[Server(url="/", description="the server that serves this document")],
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
            }
        ),
    )


def swagger_assets() -> Any:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[SWAGGER_FILES], include_in_schema=False
    )


def document(app: Litestar) -> dict[str, Any]:
    """The finished document, made once per app."""
    if (finished := app.state.get("openapi_document")) is None:
        finished = finish(copy.deepcopy(app.openapi_schema.to_schema()), app)
        app.state["openapi_document"] = finished
    return finished


def finish(doc: dict[str, Any], app: Litestar) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    component_schemas = components.setdefault("schemas", {})
    _name_enum_members(component_schemas)
    streams = _streaming_operations(app)
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if (path, method) in streams:
                _as_stream(operation)
            for response in operation.get("responses", {}).values():
                _type_binary(response)
            _add_examples(operation, component_schemas)
            _add_headers(operation, path, method)
    components["headers"] = HEADERS
    return doc


def _name_enum_members(component_schemas: dict[str, Any]) -> None:
    """Enum members get their Python names; request bodies say they take no other field."""
    kinds = {name: kind for name, kind in vars(schemas).items() if isinstance(kind, type)}
    for name, schema in component_schemas.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        if issubclass(kind, enum.Enum) and "enum" in schema:
            schema["x-enum-varnames"] = [member.name for member in kind]
        elif issubclass(kind, msgspec.Struct) and kind.__struct_config__.forbid_unknown_fields:
            schema["additionalProperties"] = False


def _streaming_operations(app: Litestar) -> set[tuple[str, str]]:
    streaming = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            returns = handler.parsed_fn_signature.return_type
            if handler.media_type == STREAM or any(
                isinstance(t, type) and issubclass(t, ServerSentEvent)
                for t in (returns.annotation, *returns.args)
            ):
                path = route.path_format or "/"
                streaming |= {(path, m.lower()) for m in handler.http_methods}
    return streaming


def _as_stream(operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2") and status != "204":
            response["content"] = {
                STREAM: {
                    "schema": {
                        "type": "string",
                        "description": "Server-sent events; each `data:` is a JSON object",
                    },
                    "example": examples.STREAM_EXAMPLE,
                }
            }


def _type_binary(response: dict[str, Any]) -> None:
    content = response.get("content") or {}
    binary = [media for media in content if BINARY_TYPES.match(media)]
    for media in binary:
        content[media] = {"schema": dict(BINARY)}
    if binary:
        content.setdefault("application/octet-stream", {"schema": dict(BINARY)})


def _add_examples(operation: dict[str, Any], component_schemas: dict[str, Any]) -> None:
    bodies = [operation.get("requestBody") or {}, *operation.get("responses", {}).values()]
    for body in bodies:
        for media in (body.get("content") or {}).values():
            schema = media.get("schema") or {}
            if "example" in media or "examples" in media or schema.get("format") == "binary":
                continue
            media["example"] = _example_of(schema, component_schemas, depth=0)


def _example_of(schema: dict[str, Any], component_schemas: dict[str, Any], depth: int) -> Any:
    """A value the schema accepts: a written example where there is one, else made up."""
    known = examples.by_component()
    if (ref := schema.get("$ref")) is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in known:
            return known[name]
        schema = component_schemas.get(name, {})
    for key in ("examples", "example", "default", "const", "enum"):
        if key in schema:
            value = schema[key]
            return value[0] if key in ("examples", "enum") and isinstance(value, list) else value
    if depth > 8:
        return None
    for key in ("oneOf", "anyOf", "allOf"):
        for option in schema.get(key, []):
            if option.get("type") != "null":
                return _example_of(option, component_schemas, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: _example_of(prop, component_schemas, depth + 1)
            for name, prop in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [_example_of(schema.get("items", {}), component_schemas, depth + 1)]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "string":
        formats = {
            "uuid": str(examples.USER_ID),
            "date-time": examples.AT.isoformat(),
            "email": "user@example.com",
            "uri": "https://api.example.com/",
        }
        return formats.get(schema.get("format", ""), "text")
    return None


def _add_headers(operation: dict[str, Any], path: str, method: str) -> None:
    limited = rule_for(method.upper(), path) is not None
    idempotent = any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))
    for status, response in operation.get("responses", {}).items():
        names = ["X-Request-ID"]
        if limited:
            names += ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
        if status == "429":
            names.append("Retry-After")
        if idempotent:
            names.append("Idempotent-Replayed")
        headers = response.setdefault("headers", {})
        for name in names:
            headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})
