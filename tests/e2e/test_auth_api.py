"""/api/auth over real HTTP: register, login, refresh rotation, logout, password reset, tokens."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import jwt
import pytest

from tests.conftest import Api, running_api, start_api
from tests.support.backends import sqlite_settings
from tests.support.errors import assert_error

PASSWORD = "password123"
FORGOT_ANSWER = {"message": "If an account exists for that email, a reset link has been sent."}


class ShiftedClock:
    """The real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def refresh_cookie(r: httpx.Response) -> Any:
    """The parsed `refreshToken` Set-Cookie of a response (a Morsel)."""
    cookies = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):
        cookies.load(header)
    assert "refreshToken" in cookies, r.headers.get_list("set-cookie")
    return cookies["refreshToken"]


def post_refresh(api: Api, token: str | None) -> httpx.Response:
    """POST /api/auth/refresh-token from a fresh client carrying only `token` as the cookie."""
    headers = {"Cookie": f"refreshToken={token}"} if token is not None else {}
    with api.client() as c:
        return c.post("/api/auth/refresh-token", headers=headers)


def login(api: Api, email: str, password: str = PASSWORD) -> httpx.Response:
    with api.client() as c:
        return c.post("/api/auth/login", json={"email": email, "password": password})


def sign_in(api: Api, email: str, password: str = PASSWORD) -> tuple[str, str]:
    """(access token, refresh token) of a new session."""
    r = login(api, email, password)
    assert r.status_code == 200, r.text
    return r.json()["accessToken"], refresh_cookie(r).value


def profile_status(api: Api, access: str) -> int:
    with api.client(access) as c:
        return c.get("/api/users/profile").status_code


def mails(api: Api, count: int = 1, timeout: float = 10.0) -> list[dict[str, str]]:
    """The outbox once it holds `count` mails: they are sent after the answer, by design."""
    deadline = time.monotonic() + timeout
    while len(messages := api.sora2.mailer.messages()) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} mails arrived"
        time.sleep(0.02)
    return messages


def reset_token(api: Api, index: int = -1) -> str:
    body = mails(api, index + 1 if index >= 0 else 1)[index]["body"]
    match = re.search(r"token=([A-Za-z0-9_.\-]+)", body)
    assert match, body
    return match.group(1)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# --- register --------------------------------------------------------------------------


def test_register_answers_201_with_user_token_and_refresh_cookie(api: Api) -> None:
    with api.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": "alice@example.com", "password": PASSWORD, "username": "alice"},
        )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"user", "accessToken"}
    user = body["user"]
    assert set(user) == {"id", "email", "username", "role", "createdAt", "updatedAt"}
    assert UUID(user["id"]).version == 4
    assert (user["email"], user["username"], user["role"]) == (
        "alice@example.com",
        "alice",
        "USER",
    )
    created = datetime.fromisoformat(user["createdAt"])
    assert user["createdAt"].endswith("Z") and created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    assert user["updatedAt"] == user["createdAt"]
    claims = claims_of(body["accessToken"])
    assert claims["sub"] == user["id"] and claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 15 * 60

    cookie = refresh_cookie(r)
    assert cookie.value and cookie.value != body["accessToken"]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/auth"
    assert cookie["max-age"] == str(7 * 24 * 3600)
    assert not cookie["secure"]  # development/test: plain HTTP must keep working
    assert claims_of(cookie.value)["typ"] == "refresh"


def test_the_seed_curl_body_registers(api: Api) -> None:
    seed_body = (
        b"{\n"
        b'    "email": "user@example.com",\n'
        b'    "password": "password123",\n'
        b'    "username": "johndoe"\n'
        b"  }"
    )
    with api.client() as c:
        r = c.post(
            "/api/auth/register", content=seed_body, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] == "user@example.com"
    assert r.json()["user"]["username"] == "johndoe"


def test_register_grants_the_signup_bonus_once(api: Api) -> None:
    user, token = api.register("alice")
    with api.client(token) as c:
        assert c.get("/api/credits/balance").json() == {"balance": 10}
        page = c.get("/api/credits/transactions").json()
    assert page["total"] == 1
    [entry] = page["items"]
    assert entry["type"] == "REWARD"
    assert (entry["amount"], entry["balance"], entry["userId"]) == (10, 10, user["id"])
    assert entry["description"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD, "username": "alice"}, "email"),
        ({"email": "alice@example.com", "username": "alice"}, "password"),
        ({"email": "alice@example.com", "password": PASSWORD}, "username"),
        ({"email": 5, "password": PASSWORD, "username": "alice"}, "email"),
        ({"email": "alice@example.com", "password": 12345678, "username": "alice"}, "password"),
        ({"email": "alice@example.com", "password": PASSWORD, "username": ["a"]}, "username"),
        ({"email": "not-an-email", "password": PASSWORD, "username": "alice"}, "email"),
        ({"email": "a@b", "password": PASSWORD, "username": "alice"}, "email"),
        ({"email": "a b@example.com", "password": PASSWORD, "username": "alice"}, "email"),
        ({"email": "alice@example.com", "password": "1234567", "username": "alice"}, "password"),
        ({"email": "alice@example.com", "password": PASSWORD, "username": "al"}, "username"),
        ({"email": "alice@example.com", "password": PASSWORD, "username": "al ice"}, "username"),
        ({"email": "alice@example.com", "password": PASSWORD, "username": "alice!"}, "username"),
        ({"email": "alice@example.com", "password": PASSWORD, "username": "a" * 33}, "username"),
        ({"email": "alice@example.com", "password": PASSWORD, "username": "alice\n"}, "username"),
        ({"email": "alice@example.com", "password": "x" * 129, "username": "alice"}, "password"),
    ],
)
def test_register_refuses_invalid_input_with_400(
    sqlite_api: Api, body: dict[str, Any], field: str
) -> None:
    with sqlite_api.client() as c:
        r = c.post("/api/auth/register", json=body)
    assert_error(r, 400, "Validation Error")
    assert field in r.json()["message"]


def test_register_accepts_the_username_edges(sqlite_api: Api) -> None:
    for username in ("abc", "a" * 32, "A_b-9"):
        with sqlite_api.client() as c:
            r = c.post(
                "/api/auth/register",
                json={
                    "email": f"{username}@example.com",
                    "password": "12345678",
                    "username": username,
                },
            )
        assert r.status_code == 201, (username, r.text)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not json", "application/json"),
        (b'{"email": "alice@example.com",', "application/json"),
        (b'["alice@example.com", "password123", "alice"]', "application/json"),
        (b"", "application/json"),
        (b"email=alice@example.com&password=password123&username=alice", "text/plain"),
    ],
)
def test_register_refuses_a_body_that_is_not_a_json_object(
    sqlite_api: Api, content: bytes, content_type: str
) -> None:
    with sqlite_api.client() as c:
        r = c.post("/api/auth/register", content=content, headers={"Content-Type": content_type})
    assert_error(r, 400, "Validation Error")


def test_register_refuses_a_taken_email_in_any_case(api: Api) -> None:
    api.register("alice")
    with api.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": "ALICE@Example.COM", "password": PASSWORD, "username": "alice2"},
        )
    assert_error(r, 409, "Conflict", "this email is already taken")
    assert login(api, "alice2@example.com").status_code == 401  # nothing half-created


def test_register_refuses_a_taken_username(api: Api) -> None:
    api.register("alice")
    for username in ("alice", "ALICE"):
        with api.client() as c:
            r = c.post(
                "/api/auth/register",
                json={"email": "other@example.com", "password": PASSWORD, "username": username},
            )
        assert_error(r, 409, "Conflict", "this username is already taken")
    # the refused attempts did not keep the email for themselves
    with api.client() as c:
        r = c.post(
            "/api/auth/register",
            json={"email": "other@example.com", "password": PASSWORD, "username": "other"},
        )
    assert r.status_code == 201, r.text


def test_concurrent_registrations_of_one_email_let_exactly_one_win(api: Api) -> None:
    def attempt(i: int) -> int:
        with api.client() as c:
            return c.post(
                "/api/auth/register",
                json={"email": "race@example.com", "password": PASSWORD, "username": f"racer{i}"},
            ).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [201, 409, 409, 409, 409, 409]


def test_register_in_production_sets_a_secure_cookie(tmp_path: Path) -> None:
    gen = start_api(sqlite_settings(tmp_path, NODE_ENV="production"))
    api = next(gen)
    try:
        with api.client() as c:
            r = c.post(
                "/api/auth/register",
                json={"email": "alice@example.com", "password": PASSWORD, "username": "alice"},
            )
        assert r.status_code == 201, r.text
        assert refresh_cookie(r)["secure"] is True
    finally:
        gen.close()


# --- login -----------------------------------------------------------------------------


def test_login_answers_200_with_the_user_a_token_and_a_cookie(api: Api) -> None:
    user, _ = api.register("alice")
    r = login(api, "Alice@Example.com")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user", "accessToken"}
    assert body["user"] == user
    cookie = refresh_cookie(r)
    assert cookie["httponly"] is True and cookie["path"] == "/api/auth"
    assert cookie["samesite"].lower() == "strict"
    assert profile_status(api, body["accessToken"]) == 200


def test_login_with_a_wrong_password_or_unknown_email_says_the_same(api: Api) -> None:
    api.register("alice")
    wrong = login(api, "alice@example.com", "wrong-password")
    unknown = login(api, "nobody@example.com", "wrong-password")
    assert_error(wrong, 401, "Unauthorized", "invalid email or password")
    assert_error(unknown, 401, "Unauthorized", "invalid email or password")
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


def test_login_with_missing_fields_is_400(sqlite_api: Api) -> None:
    with sqlite_api.client() as c:
        assert_error(c.post("/api/auth/login", json={"email": "a@b.co"}), 400, "Validation Error")
        assert_error(c.post("/api/auth/login", json={"password": "x"}), 400, "Validation Error")


# --- refresh rotation ------------------------------------------------------------------


def test_refresh_gives_a_new_access_token_and_rotates_the_cookie(api: Api) -> None:
    api.register("alice")
    _, first = sign_in(api, "alice@example.com")
    r = post_refresh(api, first)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"accessToken"}
    assert profile_status(api, r.json()["accessToken"]) == 200
    cookie = refresh_cookie(r)
    assert cookie.value and cookie.value != first
    assert cookie["httponly"] is True and cookie["path"] == "/api/auth"
    assert claims_of(cookie.value)["sid"] == claims_of(first)["sid"]  # same session, new token
    # the rotated token works in turn
    assert post_refresh(api, cookie.value).status_code == 200


def test_a_replayed_refresh_token_revokes_the_whole_session(api: Api) -> None:
    api.register("alice")
    _, first = sign_in(api, "alice@example.com")
    other_access, other_refresh = sign_in(api, "alice@example.com")  # another device
    second = refresh_cookie(post_refresh(api, first)).value

    replay = post_refresh(api, first)
    assert_error(replay, 401, "Unauthorized")
    # the token the rotation issued dies with its family
    assert_error(post_refresh(api, second), 401, "Unauthorized")
    assert_error(post_refresh(api, first), 401, "Unauthorized")
    # another session of the same user is untouched
    assert post_refresh(api, other_refresh).status_code == 200
    assert profile_status(api, other_access) == 200


def test_refresh_without_a_cookie_is_401(api: Api) -> None:
    assert_error(post_refresh(api, None), 401, "Unauthorized")
    assert_error(post_refresh(api, ""), 401, "Unauthorized")


def test_refresh_with_a_tampered_or_foreign_token_is_401(api: Api) -> None:
    _, access = api.register("alice")
    _, refresh = sign_in(api, "alice@example.com")
    header, payload, signature = refresh.split(".")
    claims = claims_of(refresh)
    claims["jti"] = "00000000-0000-4000-8000-000000000000"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    bad_signature = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    for token in (
        f"{header}.{forged}.{signature}",
        f"{header}.{payload}.{bad_signature}",
        jwt.encode(claims_of(refresh), "someone-elses-secret-0123456789abcdef", "HS256"),
        access,  # an access token is not a refresh token
        "garbage",
    ):
        assert_error(post_refresh(api, token), 401, "Unauthorized")
    assert post_refresh(api, refresh).status_code == 200  # the real one was not spent


# --- logout ----------------------------------------------------------------------------


def test_logout_clears_the_cookie_and_ends_the_session(api: Api) -> None:
    api.register("alice")
    access, refresh = sign_in(api, "alice@example.com")
    with api.client(access) as c:
        r = c.post("/api/auth/logout", headers={"Cookie": f"refreshToken={refresh}"})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"message"}
    cookie = refresh_cookie(r)
    assert cookie.value == ""
    assert cookie["max-age"] == "0" and cookie["path"] == "/api/auth"
    assert_error(post_refresh(api, refresh), 401, "Unauthorized")


def test_logout_with_only_the_bearer_ends_that_session(api: Api) -> None:
    api.register("alice")
    access, refresh = sign_in(api, "alice@example.com")
    with api.client(access) as c:
        assert c.post("/api/auth/logout").status_code == 200
        assert_error(c.get("/api/users/profile"), 401, "Unauthorized")  # access ends too
    assert_error(post_refresh(api, refresh), 401, "Unauthorized")
    other, _ = sign_in(api, "alice@example.com")
    with api.client(other) as c:  # other sessions go on
        assert c.get("/api/users/profile").status_code == 200


def test_logout_without_a_token_is_401(api: Api) -> None:
    with api.client() as c:
        assert_error(c.post("/api/auth/logout"), 401, "Unauthorized")
    with api.client("not-a-token") as c:
        assert_error(c.post("/api/auth/logout"), 401, "Unauthorized")


# --- forgot and reset password ---------------------------------------------------------


def test_forgot_password_answers_the_same_for_known_and_unknown_emails(api: Api) -> None:
    api.register("alice")
    with api.client() as c:
        known = c.post("/api/auth/forgot-password", json={"email": "ALICE@example.com"})
        unknown = c.post("/api/auth/forgot-password", json={"email": "nobody@example.com"})
        malformed = c.post("/api/auth/forgot-password", json={"email": "nobody"})
    for r in (known, unknown, malformed):
        assert r.status_code == 200, r.text
        assert r.json() == FORGOT_ANSWER
    [mail] = mails(api)
    time.sleep(0.2)
    assert len(api.sora2.mailer.messages()) == 1  # none for the unknown or malformed ones
    assert mail["to"] == "alice@example.com"
    link = re.search(r"https?://\S+", mail["body"]).group(0)
    assert link.startswith("http://localhost:3000/reset-password?token=")


class BrokenMailer:
    def send(self, to: str, subject: str, body: str) -> None:
        raise ConnectionRefusedError("the SMTP server is down")


@pytest.fixture
def mail_down_api(tmp_path: Path) -> Iterator[Api]:
    yield from start_api(sqlite_settings(tmp_path), mailer=BrokenMailer())


def test_forgot_password_answers_the_same_when_mail_cannot_be_sent(mail_down_api: Api) -> None:
    mail_down_api.register("alice")
    with mail_down_api.client() as c:
        known = c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
        unknown = c.post("/api/auth/forgot-password", json={"email": "nobody@example.com"})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.json() == FORGOT_ANSWER


def test_forgot_password_without_an_email_is_400(sqlite_api: Api) -> None:
    with sqlite_api.client() as c:
        assert_error(c.post("/api/auth/forgot-password", json={}), 400, "Validation Error")


def test_reset_password_sets_the_password_once_and_revokes_every_session(api: Api) -> None:
    _, old_access = api.register("alice")
    access, refresh = sign_in(api, "alice@example.com")
    with api.client() as c:
        c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
        token = reset_token(api)
        r = c.post("/api/auth/reset-password", json={"token": token, "password": "brand-new-pw"})
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"message"}

        assert login(api, "alice@example.com", "brand-new-pw").status_code == 200
        assert_error(login(api, "alice@example.com", PASSWORD), 401, "Unauthorized")

        again = c.post("/api/auth/reset-password", json={"token": token, "password": "other-pw-1"})
        assert_error(again, 401, "Unauthorized")
    assert login(api, "alice@example.com", "brand-new-pw").status_code == 200
    for earlier in (old_access, access):
        with api.client(earlier) as c:
            assert_error(c.get("/api/users/profile"), 401, "Unauthorized")
    assert_error(post_refresh(api, refresh), 401, "Unauthorized")


def test_only_the_latest_reset_link_works(api: Api) -> None:
    api.register("alice")
    with api.client() as c:
        c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
        first = reset_token(api, 0)  # mailed after the answer: let it land before the next
        c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
        latest = reset_token(api, 1)
        assert first != latest
        stale = c.post("/api/auth/reset-password", json={"token": first, "password": "new-pw-123"})
        assert_error(stale, 401, "Unauthorized")
        ok = c.post("/api/auth/reset-password", json={"token": latest, "password": "new-pw-123"})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "token",
    ["nonsense", "0" * 32 + ".secret", "", "00000000000040008000000000000000.x"],
)
def test_reset_password_with_a_made_up_token_is_401_or_400(sqlite_api: Api, token: str) -> None:
    sqlite_api.register("alice")
    with sqlite_api.client() as c:
        r = c.post("/api/auth/reset-password", json={"token": token, "password": "new-pw-123"})
    if token:
        assert_error(r, 401, "Unauthorized")
    else:
        assert_error(r, 400, "Validation Error")


def test_reset_password_refuses_a_short_password(api: Api) -> None:
    api.register("alice")
    with api.client() as c:
        c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
        token = reset_token(api)
        r = c.post("/api/auth/reset-password", json={"token": token, "password": "short"})
        assert_error(r, 400, "Validation Error")
        assert "password" in r.json()["message"]
        # the refused attempt did not spend the token
        ok = c.post("/api/auth/reset-password", json={"token": token, "password": "long-enough"})
        assert ok.status_code == 200, ok.text


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def clocked_api(backend_settings: Any, clock: ShiftedClock) -> Iterator[Api]:
    yield from start_api(backend_settings, clock=clock)


def test_a_reset_link_expires_after_30_minutes(clocked_api: Api, clock: ShiftedClock) -> None:
    clocked_api.register("alice")
    clocked_api.register("bob")
    with clocked_api.client() as c:
        c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
        alice_token = reset_token(clocked_api, 0)
        c.post("/api/auth/forgot-password", json={"email": "bob@example.com"})
        bob_token = reset_token(clocked_api, 1)

        clock.offset = timedelta(minutes=29)
        r = c.post("/api/auth/reset-password", json={"token": bob_token, "password": "new-pw-123"})
        assert r.status_code == 200, r.text

        clock.offset = timedelta(minutes=31)
        r = c.post("/api/auth/reset-password", json={"token": alice_token, "password": "new-pw-1"})
        assert_error(r, 401, "Unauthorized")
    clock.offset = timedelta()
    assert login(clocked_api, "alice@example.com").status_code == 200  # unchanged


# --- access tokens ---------------------------------------------------------------------


def test_a_missing_access_token_is_401(api: Api) -> None:
    with api.client() as c:
        assert_error(c.get("/api/users/profile"), 401, "Unauthorized")
        for header in ("Bearer", "Basic dXNlcjpwYXNz", "token", "Bearer  x y"):
            r = c.get("/api/users/profile", headers={"Authorization": header})
            assert_error(r, 401, "Unauthorized")


def test_a_malformed_or_tampered_access_token_is_401(api: Api) -> None:
    user, access = api.register("alice")
    _, bob_access = api.register("bob")
    header, payload, signature = access.split(".")
    claims = claims_of(access)
    claims["sub"] = claims_of(bob_access)["sub"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    unsigned = jwt.encode(claims_of(access), key=None, algorithm="none")
    for token in (
        "garbage",
        f"{header}.{payload}",
        f"{header}.{forged}.{signature}",
        f"{header}.{payload}.{signature[::-1]}",
        unsigned,
        jwt.encode(claims_of(access), "someone-elses-secret-0123456789abcdef", "HS256"),
    ):
        with api.client(token) as c:
            assert_error(c.get("/api/users/profile"), 401, "Unauthorized")
    with api.client(access) as c:
        assert c.get("/api/users/profile").json()["id"] == user["id"]


def test_an_expired_access_token_is_401(api: Api) -> None:
    user, access = api.register("alice")
    claims = claims_of(access)
    tokens = api.sora2.tokens
    user_id, session_id = UUID(user["id"]), UUID(claims["sid"])
    past = datetime.now(UTC) - timedelta(minutes=16)
    expired = tokens.access_token(user_id, session_id, claims["epoch"], now=past)
    fresh = tokens.access_token(user_id, session_id, claims["epoch"], now=datetime.now(UTC))
    with api.client(expired) as c:
        assert_error(
            c.get("/api/users/profile"), 401, "Unauthorized", "the access token has expired"
        )
    with api.client(fresh) as c:  # the same claims, in time, pass
        assert c.get("/api/users/profile").status_code == 200


def test_a_refresh_token_is_not_an_access_token(api: Api) -> None:
    api.register("alice")
    _, refresh = sign_in(api, "alice@example.com")
    with api.client(refresh) as c:
        assert_error(c.get("/api/users/profile"), 401, "Unauthorized")
        assert_error(c.post("/api/auth/logout"), 401, "Unauthorized")
    assert post_refresh(api, refresh).status_code == 200


@pytest.mark.parametrize("change", ["password", "email"])
def test_a_reset_link_dies_when_the_password_or_email_changes(api: Api, change: str) -> None:
    _, access = api.register("alice")
    with api.client() as c:
        c.post("/api/auth/forgot-password", json={"email": "alice@example.com"})
    token = reset_token(api)
    with api.client(access) as c:
        if change == "password":
            r = c.put(
                "/api/users/password",
                json={"currentPassword": PASSWORD, "newPassword": "secured-now-1"},
            )
        else:
            r = c.put(
                "/api/users/profile",
                json={"email": "alice-new@example.com", "currentPassword": PASSWORD},
            )
        assert r.status_code == 200, r.text
    with api.client() as c:
        r = c.post("/api/auth/reset-password", json={"token": token, "password": "attacker-pw"})
    assert_error(r, 401, "Unauthorized")


def test_logout_with_an_expired_access_token_still_ends_the_cookies_session(api: Api) -> None:
    user, _ = api.register("alice")
    access, refresh = sign_in(api, "alice@example.com")
    claims = claims_of(access)
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = api.sora2.tokens.access_token(UUID(user["id"]), UUID(claims["sid"]), 0, past)
    with api.client(expired) as c:
        r = c.post("/api/auth/logout", headers={"Cookie": f"refreshToken={refresh}"})
    assert r.status_code == 200, r.text
    assert_error(post_refresh(api, refresh), 401, "Unauthorized")
    with api.client(expired) as c:  # without the cookie an expired token proves nothing
        assert_error(c.post("/api/auth/logout"), 401, "Unauthorized")


def test_a_session_refreshed_again_and_again_ends_at_its_absolute_lifetime(
    tmp_path: Path,
) -> None:
    """The drill's session refreshed every 6 days lived past 30; here in seconds: tokens of
    2 s refreshed every 0.3 s, and the sign-in ends 4 s after it, fresh token or not."""
    settings = sqlite_settings(
        tmp_path, JWT_REFRESH_EXPIRES_IN="2", JWT_REFRESH_ABSOLUTE_LIFETIME="4"
    )
    with running_api(settings) as api:
        api.register("alice")
        signed_in = time.monotonic()
        _, token = sign_in(api, "alice@example.com")
        refreshes = 0
        while (r := post_refresh(api, token)).status_code == 200:
            token, refreshes = refresh_cookie(r).value, refreshes + 1
            assert time.monotonic() - signed_in < 4 + 10, "the session never ended"
            time.sleep(0.3)
        lived = time.monotonic() - signed_in
        assert_error(r, 401, message="this session has expired; sign in again")
        assert lived >= 4 and refreshes >= 3, (lived, refreshes)  # outlived its tokens' 2 s
        assert_error(post_refresh(api, token), 401)  # ended, not refused once
        _, fresh = sign_in(api, "alice@example.com")  # a new sign-in starts a new lifetime
        assert post_refresh(api, fresh).status_code == 200


def test_the_absolute_session_lifetime_defaults_to_30_days(tmp_path: Path) -> None:
    assert sqlite_settings(tmp_path).jwt_refresh_absolute_lifetime == timedelta(days=30)
