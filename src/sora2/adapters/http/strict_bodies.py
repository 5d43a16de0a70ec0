"""JSON bodies read strictly, with every problem named.

Litestar converts a handler's arguments with msgspec's lax mode (query strings are text), and
that mode also turns a body's `"5"` or `"1e3"` into a number: an order of 1000 credits from a
string. So before a handler runs, its JSON body is decoded again with the body's own Struct in
strict mode; when that fails, each field is checked on its own, so the 400 lists every unknown,
missing or mistyped field (`details`), not only the first.
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler

WHOLE_BODY = ""  # the field of a problem with the body itself (not an object, …)


async def check_body(request: Request) -> None:
    """A `before_request` hook: refuse a JSON body its Struct would not decode strictly."""
    kind = body_type(request.route_handler)
    if kind is None:
        return
    body = await request.body()
    if not body.strip():
        return  # Litestar answers a missing body itself
    try:
        msgspec.json.decode(body, type=kind)
        return
    except msgspec.DecodeError as exc:
        if not isinstance(exc, msgspec.ValidationError):
            return  # not JSON at all: Litestar says so
        problems = field_problems(msgspec.json.decode(body), kind) or [_located(str(exc))]
    raise ValidationException(
        detail="the request body is invalid",
        extra=[{"key": field, "message": message} for field, message in problems],
    )


@cache
def body_type(handler: HTTPRouteHandler) -> type[msgspec.Struct] | None:
    """The Struct a handler reads from a JSON body, if it reads one."""
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return None
    media = getattr(field.kwarg_definition, "media_type", RequestEncodingType.JSON)
    if media != RequestEncodingType.JSON:
        return None
    kinds = [field.annotation, *get_args(field.annotation)]
    return next((k for k in kinds if isinstance(k, type) and issubclass(k, msgspec.Struct)), None)


def field_problems(value: Any, kind: type[msgspec.Struct]) -> list[tuple[str, str]]:
    """(field, message) for each field of `value` that `kind` refuses in strict mode."""
    if not isinstance(value, dict):
        return [(WHOLE_BODY, f"the body must be a JSON object, got {_json_type(value)}")]
    fields = {f.encode_name: f for f in msgspec.structs.fields(kind)}
    problems = [(name, "is not a field of this request") for name in value if name not in fields]
    for name, field in fields.items():
        if name not in value:
            if field.required:
                problems.append((name, "is required"))
            continue
        try:
            msgspec.convert(value[name], field.type, strict=True)
        except msgspec.ValidationError as exc:
            inner, message = _located(str(exc))
            problems.append((name + inner, message))
    return problems


def _located(error: str) -> tuple[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.credits`" → ("credits", "Expected …")."""
    message, _, where = error.partition(" - at `$")
    return where.rstrip("`").removeprefix("."), message


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
