"""The one check that an HTTP answer is the API's error shape."""

from __future__ import annotations

from typing import Any

import httpx


def assert_error(
    r: httpx.Response, status: int, error: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """`{error, message, statusCode}` with this status (and this name or text, if given);
    a 400 may list its fields' problems as `details: [{field, message}]`."""
    assert r.status_code == status, r.text
    body = r.json()
    if status == 400 and "details" in body:
        assert body["details"] and all(
            set(d) == {"field", "message"} and d["field"] and d["message"] for d in body["details"]
        ), body
        assert all(d["field"] in body["message"] for d in body["details"]), body
        body = {k: v for k, v in body.items() if k != "details"} | {"details": body["details"]}
    assert set(body) - {"details"} == {"error", "message", "statusCode"}, body
    assert body["statusCode"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    if error is not None:
        assert body["error"] == error, body
    if message is not None:
        assert body["message"] == message, body
    return body
