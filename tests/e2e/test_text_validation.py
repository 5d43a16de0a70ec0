"""No poison text reaches an event: control characters in any field are a 400, over HTTP.

A NUL in an event cannot be projected into PostgreSQL, and once one is stored every later
write waits behind it; so each refusal is checked to leave nothing behind, and the API to
go on working (on PostgreSQL: a later write is visible).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import Api
from tests.support.errors import assert_error

PASSWORD = "password123"
POISONS = {"NUL": "\u0000", "BEL": "\u0007"}
CONTROL = "must not contain control characters"


@dataclass(frozen=True)
class Field:
    """One text field of one endpoint: a valid body, and the field to poison in it."""

    method: str
    path: str
    body: dict[str, Any]
    field: str
    says: str  # part of the 400's message after "<field>: "
    signed_in: bool = True

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.field}"


VIDEO = {"prompt": "a red fox in the snow", "duration": 5, "aspectRatio": "16:9"}
ORDER = {"credits": 10, "paymentMethod": "ALIPAY"}
NEWBIE = {"email": "newbie@example.com", "password": PASSWORD, "username": "newbie"}
VALID_EMAIL = "a valid email address"
USERNAME = "3-32 letters"
CHOICE = "Invalid enum value"

FIELDS = [
    Field("POST", "/api/auth/register", NEWBIE, "email", VALID_EMAIL, signed_in=False),
    Field("POST", "/api/auth/register", NEWBIE, "username", USERNAME, signed_in=False),
    Field("POST", "/api/auth/register", NEWBIE, "password", CONTROL, signed_in=False),
    Field(
        "POST",
        "/api/auth/login",
        {"email": "alice@example.com", "password": PASSWORD},
        "email",
        CONTROL,
        signed_in=False,
    ),
    Field(
        "POST",
        "/api/auth/login",
        {"email": "alice@example.com", "password": PASSWORD},
        "password",
        CONTROL,
        signed_in=False,
    ),
    Field(
        "POST",
        "/api/auth/forgot-password",
        {"email": "alice@example.com"},
        "email",
        CONTROL,
        signed_in=False,
    ),
    Field(
        "POST",
        "/api/auth/reset-password",
        {"token": f"{'0' * 32}.not-a-secret", "password": "new-password-1"},
        "token",
        CONTROL,
        signed_in=False,
    ),
    Field(
        "POST",
        "/api/auth/reset-password",
        {"token": f"{'0' * 32}.not-a-secret", "password": "new-password-1"},
        "password",
        CONTROL,
        signed_in=False,
    ),
    Field("PUT", "/api/users/profile", {"username": "alice_2"}, "username", USERNAME),
    Field(
        "PUT",
        "/api/users/profile",
        {"email": "alice2@example.com", "currentPassword": "password123"},
        "email",
        VALID_EMAIL,
    ),
    Field(
        "PUT",
        "/api/users/password",
        {"currentPassword": PASSWORD, "newPassword": "new-password-1"},
        "currentPassword",
        CONTROL,
    ),
    Field(
        "PUT",
        "/api/users/password",
        {"currentPassword": PASSWORD, "newPassword": "new-password-1"},
        "newPassword",
        CONTROL,
    ),
    Field("POST", "/api/videos/generate", VIDEO, "prompt", CONTROL),
    Field("POST", "/api/videos/generate", VIDEO, "aspectRatio", CHOICE),
    Field("POST", "/api/videos/generate-stream", VIDEO, "prompt", CONTROL),
    Field("POST", "/api/videos/generate-stream", VIDEO, "aspectRatio", CHOICE),
    Field("POST", "/api/orders/create", ORDER, "paymentMethod", CHOICE),
    Field("POST", "/api/credits/recharge", ORDER, "paymentMethod", CHOICE),
]


def poisoned(value: str, poison: str) -> str:
    return value[:1] + poison + value[1:]


def state_of(c: httpx.Client) -> dict[str, Any]:
    """What the signed-in user can see of their account: it must not change."""
    return {
        "profile": c.get("/api/users/profile").json(),
        "balance": c.get("/api/credits/balance").json(),
        "credits": c.get("/api/credits/transactions").json()["total"],
        "videos": c.get("/api/videos").json()["total"],
        "orders": c.get("/api/orders").json()["total"],
    }


def assert_still_works(api: Api) -> None:
    """A normal sign-up, read and write all go through, and the write is visible."""
    user, token = api.register("newbie")  # 201: the refused sign-ups claimed nothing
    with api.client(token) as c:
        assert c.get("/api/users/profile").json() == user
        r = c.put("/api/users/profile", json={"username": "newbie_2"})
        assert r.status_code == 200, r.text
        assert c.get("/api/users/profile").json()["username"] == "newbie_2"
    with api.client() as c:
        r = c.post("/api/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text  # alice's password was not changed or reset


@pytest.mark.parametrize("case", FIELDS, ids=str)
def test_a_control_character_in_a_text_field_is_a_400_and_stores_nothing(
    api: Api, case: Field
) -> None:
    _, token = api.register("alice")
    with api.client(token) as signed_in, api.client() as anonymous:
        before = state_of(signed_in)
        client = signed_in if case.signed_in else anonymous
        for name, poison in POISONS.items():
            body = {**case.body, case.field: poisoned(case.body[case.field], poison)}
            r = client.request(case.method, case.path, json=body)
            error = assert_error(r, 400, "Validation Error")
            assert error["message"].startswith(f"{case.field}: "), (name, error)
            assert case.says in error["message"], (name, error)
            assert poison not in error["message"]
        assert state_of(signed_in) == before
    assert_still_works(api)


def test_a_prompt_may_hold_newlines_tabs_and_any_script(api: Api) -> None:
    _, token = api.register("alice")
    prompt = "第一行：一只猫在雨中\n\tsecond line, indented\n三行目 🐈"
    with api.client(token) as c:
        r = c.post("/api/videos/generate", json={"prompt": prompt})
        assert r.status_code == 201, r.text
        assert r.json()["prompt"] == prompt
        assert c.get(f"/api/videos/{r.json()['id']}").json()["prompt"] == prompt


def test_text_outside_ascii_is_welcome_where_it_is_valid(api: Api) -> None:
    password = "pässwörd-密码-🔑"
    with api.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": "zoë@exämple.com", "password": password, "username": "zoe"},
        )
        assert r.status_code == 201, r.text
        r = c.post("/api/auth/login", json={"email": "Zoë@Exämple.com", "password": password})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "poison",
    ["\r", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"],
    ids=lambda p: f"U+{ord(p):04X}",
)
def test_other_control_characters_are_refused_even_in_a_prompt(
    sqlite_api: Api, poison: str
) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        r = c.post("/api/videos/generate", json={"prompt": f"a fox{poison}in the snow"})
        error = assert_error(r, 400, "Validation Error")
        assert error["message"].startswith("prompt: must not contain control characters")
        r = c.put(
            "/api/users/password", json={"currentPassword": PASSWORD, "newPassword": poison * 9}
        )
        assert assert_error(r, 400)["message"].startswith("newPassword: ")
        assert c.get("/api/videos").json()["total"] == 0


@pytest.mark.parametrize("field", ["email", "password", "username"])
def test_a_newline_or_tab_in_a_single_line_field_is_refused(sqlite_api: Api, field: str) -> None:
    with sqlite_api.client() as c:
        for poison in ("\n", "\t"):
            for value in (NEWBIE[field] + poison, poisoned(NEWBIE[field], poison)):
                r = c.post("/api/auth/register", json={**NEWBIE, field: value})
                assert assert_error(r, 400)["message"].startswith(f"{field}: "), repr(value)
    sqlite_api.register("newbie")


def test_a_lone_surrogate_is_malformed_json(sqlite_api: Api) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        for content in (b'{"prompt": "a\\ud800b"}', b'{"prompt": "a\xed\xa0\x80b"}'):
            r = c.post(
                "/api/videos/generate",
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert_error(r, 400, "Validation Error")
        assert c.get("/api/videos").json()["total"] == 0


def raw_post(api: Api, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """One HTTP/1.1 request, header bytes as given (httpx refuses control characters)."""
    url = urlparse(api.base)
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: test", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Type: application/json", b"Content-Length: " + str(len(body)).encode()]
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_an_idempotency_key_with_a_control_character_is_a_400(api: Api) -> None:
    _, token = api.register("alice")
    auth = (b"Authorization", f"Bearer {token}".encode())
    for key in (b"key\x07one", b"key\x7fone", b"key\xffone", b"key one"):
        answer = raw_post(api, "/api/orders/create", [auth, (b"Idempotency-Key", key)], b"{}")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer
        assert body.startswith(b'{"error":"Validation Error","message":"Idempotency-Key: '), body
    with api.client(token) as c:
        assert c.get("/api/orders").json()["total"] == 0
        r = c.post("/api/orders/create", json=ORDER, headers={"Idempotency-Key": "key-1"})
        assert r.status_code == 201, r.text
        assert c.get("/api/orders").json()["total"] == 1


@pytest.mark.parametrize(
    "name",
    ["a" * 300 + ".png", "a\x00b.png", "bell\x07.png", "../../etc/passwd", "猫" * 300],
    ids=["300 chars", "NUL", "BEL", "path", "300 CJK"],
)
def test_an_avatar_file_name_is_never_used(api: Api, name: str) -> None:
    from tests.e2e.test_users_api import image

    _, token = api.register("alice")
    png = image("PNG")
    boundary = "sora2-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + name.encode()
        + b'"\r\nContent-Type: image/png\r\n\r\n'
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with api.client(token) as c:
        r = c.post(
            "/api/users/avatar",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 200, r.text
        url = r.json()["avatarUrl"]
        assert name not in url and "passwd" not in url and "\x00" not in url
        assert c.get(url).content == png
    assert_still_works(api)


def test_a_refused_request_leaves_the_ledger_alone(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        assert_error(c.post("/api/videos/generate", json={"prompt": "a\u0000b"}), 400)
        r = c.post("/api/credits/recharge", json={"credits": 20, "paymentMethod": "A\u0000LIPAY"})
        assert_error(r, 400)
        assert c.get("/api/credits/balance").json() == {"balance": 10}
        assert c.post("/api/credits/recharge", json=ORDER).status_code == 201
        assert c.post("/api/videos/generate", json={"prompt": "a fox"}).status_code == 201
        assert c.get("/api/credits/balance").json() == {"balance": 15}
