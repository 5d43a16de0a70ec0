"""/api/users over real HTTP: profile, profile changes, password change, avatar upload."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Api
from tests.support.errors import assert_error

PASSWORD = "password123"
AVATAR_LIMIT = 5 * 1024 * 1024


def login(api: Api, email: str, password: str = PASSWORD) -> httpx.Response:
    with api.client() as c:
        return c.post("/api/auth/login", json={"email": email, "password": password})


def refresh_token_of(r: httpx.Response) -> str:
    cookies = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):
        cookies.load(header)
    return cookies["refreshToken"].value


def post_refresh(api: Api, token: str) -> httpx.Response:
    with api.client() as c:
        return c.post("/api/auth/refresh-token", headers={"Cookie": f"refreshToken={token}"})


def image(kind: str, size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, kind)
    return buffer.getvalue()


# --- profile ---------------------------------------------------------------------------


def test_profile_is_the_signed_in_user(api: Api) -> None:
    alice, token = api.register("alice")
    api.register("bob")
    with api.client(token) as c:
        r = c.get("/api/users/profile")
    assert r.status_code == 200, r.text
    assert r.json() == alice


def test_profile_needs_a_bearer_token(api: Api) -> None:
    with api.client() as c:
        for method in ("GET", "PUT"):
            assert_error(c.request(method, "/api/users/profile", json={}), 401, "Unauthorized")
        r = c.put("/api/users/password", json={"currentPassword": "x", "newPassword": "y" * 8})
        assert_error(r, 401, "Unauthorized")
        r = c.post("/api/users/avatar", files={"file": ("a.png", image("PNG"), "image/png")})
        assert_error(r, 401, "Unauthorized")


def test_update_profile_changes_username_and_email(api: Api) -> None:
    alice, token = api.register("alice")
    with api.client(token) as c:
        r = c.put(
            "/api/users/profile",
            json={"username": "alice_2", "email": "New@Example.com", "currentPassword": PASSWORD},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["id"], body["username"], body["email"]) == (
            alice["id"],
            "alice_2",
            "new@example.com",
        )
        assert body["createdAt"] == alice["createdAt"]
        assert datetime.fromisoformat(body["updatedAt"]) > datetime.fromisoformat(
            alice["updatedAt"]
        )
        assert c.get("/api/users/profile").json() == body
    assert login(api, "new@example.com").status_code == 200
    assert_error(login(api, "alice@example.com"), 401, "Unauthorized")


def test_update_profile_with_one_field_keeps_the_other(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        assert c.put("/api/users/profile", json={"username": "alicia"}).json()["email"] == (
            "alice@example.com"
        )
        body = c.put(
            "/api/users/profile", json={"email": "alicia@example.com", "currentPassword": PASSWORD}
        ).json()
        assert (body["username"], body["email"]) == ("alicia", "alicia@example.com")
        unchanged = c.put("/api/users/profile", json={})
        assert unchanged.status_code == 200
        assert unchanged.json()["username"] == "alicia"


def test_released_email_and_username_are_free_for_someone_else(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        r = c.put(
            "/api/users/profile",
            json={"username": "alicia", "email": "alicia@example.com", "currentPassword": PASSWORD},
        )
        assert r.status_code == 200, r.text
    user, _ = api.register("alice")  # alice@example.com, username alice
    assert (user["email"], user["username"]) == ("alice@example.com", "alice")


def test_taking_another_users_username_or_email_is_409(api: Api) -> None:
    _, token = api.register("alice")
    api.register("bob")
    with api.client(token) as c:
        for body, message in (
            ({"username": "bob"}, "this username is already taken"),
            ({"username": "BOB"}, "this username is already taken"),
            ({"email": "bob@example.com"}, "this email is already taken"),
            ({"email": "BOB@example.com"}, "this email is already taken"),
            ({"username": "fresh", "email": "bob@example.com"}, "this email is already taken"),
        ):
            body = {**body, "currentPassword": PASSWORD}
            assert_error(c.put("/api/users/profile", json=body), 409, "Conflict", message)
        profile = c.get("/api/users/profile").json()
    # nothing of a refused change was kept
    assert (profile["username"], profile["email"]) == ("alice", "alice@example.com")
    user, _ = api.register("fresh")
    assert user["username"] == "fresh"


def test_changing_only_the_case_of_ones_own_username_is_allowed(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        r = c.put("/api/users/profile", json={"username": "Alice"})
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "Alice"


def test_role_and_id_cannot_be_set_through_the_profile(api: Api) -> None:
    """Fields the profile does not take are refused, each named, and nothing changes."""
    alice, token = api.register("alice")
    with api.client(token) as c:
        r = c.put(
            "/api/users/profile",
            json={
                "username": "alicia",
                "role": "ADMIN",
                "id": "00000000-0000-4000-8000-000000000000",
                "createdAt": "2000-01-01T00:00:00Z",
            },
        )
        error = assert_error(r, 400, "Validation Error")
        assert {d["field"] for d in error["details"]} == {"role", "id", "createdAt"}
        profile = c.get("/api/users/profile").json()
        assert (profile["role"], profile["id"], profile["username"]) == (
            "USER",
            alice["id"],
            "alice",
        )


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab"},
        {"username": "bad name"},
        {"username": "x" * 33},
        {"username": 7},
        {"email": "nope"},
        {"email": 5},
    ],
)
def test_update_profile_refuses_invalid_values(sqlite_api: Api, body: dict[str, Any]) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        r = c.put("/api/users/profile", json=body)
        assert_error(r, 400, "Validation Error")
        assert next(iter(body)) in r.json()["message"]
        assert c.get("/api/users/profile").json()["username"] == "alice"


# --- password --------------------------------------------------------------------------


def test_change_password_with_a_wrong_current_password_is_401(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        r = c.put(
            "/api/users/password",
            json={"currentPassword": "not-my-password", "newPassword": "brand-new-pw"},
        )
        assert_error(r, 401, "Unauthorized", "the current password is wrong")
        assert c.get("/api/users/profile").status_code == 200  # nothing was revoked
    assert login(api, "alice@example.com").status_code == 200


def test_change_password_refuses_a_short_new_password(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        r = c.put("/api/users/password", json={"currentPassword": PASSWORD, "newPassword": "short"})
    assert_error(r, 400, "Validation Error")
    assert "newPassword" in r.json()["message"]
    assert login(api, "alice@example.com").status_code == 200


def test_change_password_revokes_other_sessions_and_keeps_the_caller_signed_in(api: Api) -> None:
    _, token = api.register("alice")
    other = login(api, "alice@example.com")
    other_access, other_refresh = other.json()["accessToken"], refresh_token_of(other)
    with api.client(token) as c:
        r = c.put(
            "/api/users/password",
            json={"currentPassword": PASSWORD, "newPassword": "brand-new-pw"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"message", "accessToken"}
        new_refresh = refresh_token_of(r)
        # the token this request came with belongs to the revoked sessions too
        assert_error(c.get("/api/users/profile"), 401, "Unauthorized")
    with api.client(body["accessToken"]) as c:
        assert c.get("/api/users/profile").status_code == 200
    with api.client(other_access) as c:
        assert_error(c.get("/api/users/profile"), 401, "Unauthorized")
    assert_error(post_refresh(api, other_refresh), 401, "Unauthorized")
    assert post_refresh(api, new_refresh).status_code == 200

    assert login(api, "alice@example.com", "brand-new-pw").status_code == 200
    assert_error(login(api, "alice@example.com"), 401, "Unauthorized")


# --- avatar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "content_type", "extension"),
    [
        ("PNG", "me.png", "image/png", "png"),
        ("JPEG", "me.jpg", "image/jpeg", "jpg"),
        ("WEBP", "me.webp", "image/webp", "webp"),
        ("PNG", "notes.txt", "text/plain", "png"),  # the content decides, not the name
    ],
)
def test_avatar_upload_accepts_real_images(
    api: Api, kind: str, name: str, content_type: str, extension: str
) -> None:
    alice, token = api.register("alice")
    data = image(kind)
    with api.client(token) as c:
        r = c.post("/api/users/avatar", files={"file": (name, data, content_type)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {
            "id",
            "email",
            "username",
            "role",
            "createdAt",
            "updatedAt",
            "avatarUrl",
        }
        assert body["id"] == alice["id"]
        prefix = f"{api.base}/api/files/avatars/{alice['id']}/"
        assert body["avatarUrl"].startswith(prefix)
        assert body["avatarUrl"].endswith(f".{extension}")
        assert c.get("/api/users/profile").json()["avatarUrl"] == body["avatarUrl"]
    key = body["avatarUrl"].removeprefix(f"{api.base}/api/files/")
    assert b"".join(api.sora2.storage.read(key)) == data


def test_a_new_avatar_replaces_the_old_one(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        first = c.post("/api/users/avatar", files={"file": ("a.png", image("PNG"), "image/png")})
        second = c.post(
            "/api/users/avatar", files={"file": ("b.jpg", image("JPEG", (32, 32)), "image/jpeg")}
        )
        assert first.status_code == second.status_code == 200
        assert first.json()["avatarUrl"] != second.json()["avatarUrl"]
        assert c.get("/api/users/profile").json()["avatarUrl"] == second.json()["avatarUrl"]


@pytest.mark.parametrize(
    "data",
    [b"just some text, not an image", b"GIF89a" + b"\x00" * 32, b"%PDF-1.4\n", b""],
)
def test_avatar_upload_refuses_what_is_not_an_image_with_415(sqlite_api: Api, data: bytes) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        r = c.post("/api/users/avatar", files={"file": ("avatar.png", data, "image/png")})
        assert_error(r, 415, "Unsupported Media Type")
        assert "avatarUrl" not in c.get("/api/users/profile").json()


def test_avatar_upload_over_5_mb_is_413(api: Api) -> None:
    _, token = api.register("alice")
    png_header = image("PNG")[:16]
    just_over = png_header + b"\0" * (AVATAR_LIMIT + 1 - len(png_header))
    way_over = png_header + b"\0" * (AVATAR_LIMIT * 2)
    with api.client(token) as c:
        for data in (just_over, way_over):
            r = c.post("/api/users/avatar", files={"file": ("big.png", data, "image/png")})
            assert_error(r, 413, "Request Entity Too Large")
        assert "avatarUrl" not in c.get("/api/users/profile").json()


def test_avatar_upload_of_exactly_5_mb_is_accepted(sqlite_api: Api) -> None:
    _, token = sqlite_api.register("alice")
    png = image("PNG")
    data = png + b"\0" * (AVATAR_LIMIT - len(png))
    with sqlite_api.client(token) as c:
        r = c.post("/api/users/avatar", files={"file": ("max.png", data, "image/png")})
    assert r.status_code == 200, r.text


def test_avatar_upload_without_the_file_field_is_400(sqlite_api: Api) -> None:
    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        r = c.post("/api/users/avatar", files={"picture": ("a.png", image("PNG"), "image/png")})
        assert_error(r, 400, "Validation Error")
        assert "file" in r.json()["message"]
        assert_error(c.post("/api/users/avatar", data={"file": "text"}), 400, "Validation Error")
        assert_error(c.post("/api/users/avatar"), 400, "Validation Error")
        r = c.post("/api/users/avatar", json={"file": "aGVsbG8="})
        assert_error(r, 400, "Validation Error")


def test_a_new_avatar_replaces_the_stored_old_one(sqlite_api: Api) -> None:
    from sora2.application.ports import BlobNotFound

    _, token = sqlite_api.register("alice")
    with sqlite_api.client(token) as c:
        first = c.post("/api/users/avatar", files={"file": ("a.png", image("PNG"), "image/png")})
        second = c.post("/api/users/avatar", files={"file": ("b.jpg", image("JPEG"), "image/jpeg")})
        served = c.get(second.json()["avatarUrl"].replace("http://testserver", ""))
    old_key = first.json()["avatarUrl"].split("/api/files/", 1)[1]
    new_key = second.json()["avatarUrl"].split("/api/files/", 1)[1]
    assert old_key != new_key
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert sqlite_api.sora2.storage.size(new_key) > 0
    with pytest.raises(BlobNotFound):
        sqlite_api.sora2.storage.size(old_key)


# --- account takeover: a stolen access token alone cannot move the account -------------


def outbox(api: Api, to: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while len(found := [m for m in api.sora2.mailer.messages() if m["to"] == to]) < count:
        assert time.monotonic() < deadline, (to, api.sora2.mailer.messages())
        time.sleep(0.05)
    return found


def test_changing_the_email_needs_the_current_password_and_tells_the_old_address(
    api: Api,
) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        missing = c.put("/api/users/profile", json={"email": "thief@example.com"})
        assert_error(missing, 400, message="currentPassword: is required to change the email")
        wrong = c.put(
            "/api/users/profile",
            json={"email": "thief@example.com", "currentPassword": "not-the-password"},
        )
        assert_error(wrong, 401, message="the current password is wrong")
        assert c.get("/api/users/profile").json()["email"] == "alice@example.com"
        # the username alone still needs nothing more
        assert c.put("/api/users/profile", json={"username": "alice_b"}).status_code == 200
        assert [m for m in api.sora2.mailer.messages() if m["to"] == "alice@example.com"] == []

        before = datetime.now(UTC)
        moved = c.put(
            "/api/users/profile",
            json={"email": "alice.new@example.com", "currentPassword": PASSWORD},
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["email"] == "alice.new@example.com"
    (notice,) = outbox(api, "alice@example.com")
    assert notice["subject"] == "The email of your Sora2 account was changed"
    assert "a***@example.com" in notice["body"]  # the new address, masked
    assert "alice.new@example.com" not in notice["body"]
    stamp = re.search(r"at (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC", notice["body"])
    assert stamp, notice["body"]
    when = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert before - timedelta(minutes=1) <= when <= datetime.now(UTC)
    assert f"{api.sora2.settings.frontend_url}/forgot-password" in notice["body"]  # to report
    assert "not you" in notice["body"]


def test_a_password_change_tells_the_owner(api: Api) -> None:
    _, token = api.register("alice")
    with api.client(token) as c:
        wrong = c.put(
            "/api/users/password",
            json={"currentPassword": "wrong-password", "newPassword": "new-password-1"},
        )
        assert_error(wrong, 401)
        ok = c.put(
            "/api/users/password",
            json={"currentPassword": PASSWORD, "newPassword": "new-password-1"},
        )
        assert ok.status_code == 200, ok.text
    (notice,) = outbox(api, "alice@example.com")
    assert notice["subject"] == "Your Sora2 password was changed"
    assert re.search(r"at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", notice["body"]), notice["body"]
    assert "/forgot-password" in notice["body"]
