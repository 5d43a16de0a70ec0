"""Account takeover by guessing: failed sign-ins are counted per account, whatever address
they come from; reset mails are counted per recipient, silently. Over real HTTP, behind a
trusted proxy so every guess can claim another client address, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Api, start_api
from tests.support.backends import postgres_settings, sqlite_settings
from tests.support.errors import assert_error

PASSWORD = "password123"
LIMITED = {"RATE_LIMIT_ENABLED": "true", "TRUSTED_PROXIES": "127.0.0.1"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    if request.param == "sqlite":
        yield from start_api(sqlite_settings(tmp_path, **LIMITED))
    else:
        with postgres_settings(tmp_path, **LIMITED) as settings:
            yield from start_api(settings)


def login(api: Api, email: str, password: str, address: str):  # noqa: ANN201
    with api.client() as c:
        return c.post(
            "/api/auth/login",
            json={"email": email, "password": password},
            headers={"X-Forwarded-For": address},
        )


def mails_to(api: Api, to: str) -> list[dict[str, str]]:
    return [m for m in api.sora2.mailer.messages() if m["to"] == to]


def test_ten_wrong_passwords_from_ten_addresses_lock_the_account_from_every_address(
    api: Api,
) -> None:
    api.register("alice")
    api.register("bob")
    for i in range(10):  # a botnet: each guess from its own address
        assert_error(login(api, "alice@example.com", f"guess-{i}", f"198.51.100.{i}"), 401)
    locked = login(api, "alice@example.com", PASSWORD, "203.0.113.50")  # the right one
    assert_error(locked, 429, message="too many failed sign-ins for this account; try again later")
    assert 1 <= int(locked.headers["retry-after"]) <= 15 * 60
    assert_error(login(api, "ALICE@example.com", PASSWORD, "203.0.113.51"), 429)  # same account
    # the owner is told, once
    deadline = time.monotonic() + 10
    while not (notices := mails_to(api, "alice@example.com")):
        assert time.monotonic() < deadline, api.sora2.mailer.messages()
        time.sleep(0.05)
    (notice,) = notices
    assert notice["subject"] == "Sign-ins to your Sora2 account are paused"
    assert "UTC" in notice["body"] and "/forgot-password" in notice["body"]
    # other accounts sign in as ever, from the very addresses the guesses came from
    assert login(api, "bob@example.com", PASSWORD, "198.51.100.3").status_code == 200


def test_a_success_before_the_limit_starts_the_count_again(api: Api) -> None:
    api.register("alice")
    for i in range(9):
        assert_error(login(api, "alice@example.com", f"guess-{i}", "198.51.100.1"), 401)
    assert login(api, "alice@example.com", PASSWORD, "198.51.100.1").status_code == 200
    for i in range(9):
        assert_error(login(api, "alice@example.com", f"again-{i}", "198.51.100.1"), 401)
    assert login(api, "alice@example.com", PASSWORD, "198.51.100.1").status_code == 200


def test_an_unknown_email_is_locked_the_same_way(api: Api) -> None:
    """A 429 for real accounts only would tell which emails exist."""
    for i in range(10):
        assert_error(login(api, "nobody@example.com", f"guess-{i}", f"198.51.100.{i}"), 401)
    assert_error(login(api, "nobody@example.com", PASSWORD, "203.0.113.9"), 429)
    assert api.sora2.mailer.messages() == []


def test_reset_mails_to_one_recipient_are_throttled_silently(api: Api) -> None:
    api.register("alice")
    with api.client() as c:
        answers = [
            c.post(
                "/api/auth/forgot-password",
                json={"email": "alice@example.com"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            for i in range(8)
        ]
        unknown = c.post("/api/auth/forgot-password", json={"email": "nobody@example.com"})
    assert {(r.status_code, r.text) for r in [*answers, unknown]} == {(200, unknown.text)}
    # the work goes on after each answer: wait until all eight were counted
    counter, window = api.sora2.accounts.attempts, timedelta(hours=1)
    deadline = time.monotonic() + 20
    while counter.count("reset:alice@example.com", window, datetime.now(UTC))[0] < 8:
        assert time.monotonic() < deadline, api.sora2.mailer.messages()
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while len(mails_to(api, "alice@example.com")) < 3:  # the mail follows the count
        assert time.monotonic() < deadline, api.sora2.mailer.messages()
        time.sleep(0.05)
    assert len(mails_to(api, "alice@example.com")) == 3
