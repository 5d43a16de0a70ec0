"""User, Claim and Session: identity rules, unique values and rotating refresh tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from sora2.domain.errors import Conflict, InvalidInput, NotAuthenticated
from sora2.domain.users.claim import Claim
from sora2.domain.users.session import Session
from sora2.domain.users.user import User

NOW = datetime(2025, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)


def new_user(email: str = "ada@example.com", username: str = "ada") -> User:
    return User.register(uuid4(), email, username, "hash-0", NOW)


def user_with_reset_token(token_hash: str = "token-hash", ttl: timedelta = timedelta(minutes=30)):
    user = new_user()
    user.request_password_reset(token_hash, NOW + ttl, NOW)
    user.collect_events()
    return user


# --- User: email and username -------------------------------------------------------------


def test_register_normalises_the_email() -> None:
    user = new_user(email="  Ada.Lovelace@Example.COM ")
    assert user.email == "ada.lovelace@example.com"
    (registered,) = user.collect_events()
    assert isinstance(registered, User.Registered)
    assert registered.email == "ada.lovelace@example.com"
    assert (user.role, user.session_epoch) == ("USER", 0)


@pytest.mark.parametrize(
    "email", ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com", "a@b@c.com"]
)
def test_register_refuses_an_invalid_email(email: str) -> None:
    with pytest.raises(InvalidInput):
        new_user(email=email)


def test_register_refuses_an_overlong_email() -> None:
    with pytest.raises(InvalidInput):
        new_user(email="a" * 250 + "@example.com")


@pytest.mark.parametrize("username", ["abc", "Ada_Lovelace-1", "x" * 32])
def test_register_accepts_valid_usernames(username: str) -> None:
    assert new_user(username=username).username == username


@pytest.mark.parametrize("username", ["", "ab", "x" * 33, "ada lovelace", "ada!", "adá", "ada\n"])
def test_register_refuses_invalid_usernames(username: str) -> None:
    with pytest.raises(InvalidInput):
        new_user(username=username)


def test_change_email_normalises_and_ignores_the_same_address() -> None:
    user = new_user()
    user.collect_events()
    user.change_email(" ADA@example.com", LATER)
    assert user.collect_events() == []
    user.change_email("New@Example.com", LATER)
    (changed,) = user.collect_events()
    assert changed.email == user.email == "new@example.com"
    with pytest.raises(InvalidInput):
        user.change_email("not-an-email", LATER)
    assert user.email == "new@example.com"


def test_change_username_checks_the_rules() -> None:
    user = new_user()
    user.collect_events()
    with pytest.raises(InvalidInput):
        user.change_username("no", LATER)
    assert user.collect_events() == []
    user.change_username("lovelace", LATER)
    assert user.username == "lovelace"
    assert len(user.collect_events()) == 1


# --- User: passwords ------------------------------------------------------------------------


def test_change_password_bumps_the_session_epoch() -> None:
    user = new_user()
    user.collect_events()
    user.change_password("hash-1", LATER)
    user.change_password("hash-2", LATER)
    first, second = user.collect_events()
    assert (first.session_epoch, second.session_epoch) == (1, 2)
    assert (user.password_hash, user.session_epoch) == ("hash-2", 2)


def test_reset_password_with_the_current_token_sets_it_and_bumps_the_epoch() -> None:
    user = user_with_reset_token()
    user.reset_password("token-hash", "hash-1", LATER)
    (reset,) = user.collect_events()
    assert isinstance(reset, User.PasswordReset)
    assert (reset.password_hash, reset.session_epoch) == ("hash-1", 1)
    assert (user.password_hash, user.session_epoch) == ("hash-1", 1)


def test_a_reset_token_works_once() -> None:
    user = user_with_reset_token()
    user.reset_password("token-hash", "hash-1", LATER)
    with pytest.raises(NotAuthenticated):
        user.reset_password("token-hash", "hash-2", LATER)
    assert (user.password_hash, user.session_epoch) == ("hash-1", 1)


@pytest.mark.parametrize(
    "token_hash, at",
    [
        ("wrong-hash", LATER),  # not the token issued
        ("token-hash", NOW + timedelta(minutes=30)),  # expires at that instant
        ("token-hash", NOW + timedelta(days=1)),
    ],
    ids=["wrong token", "at expiry", "after expiry"],
)
def test_a_wrong_or_expired_reset_token_is_refused(token_hash: str, at: datetime) -> None:
    user = user_with_reset_token()
    with pytest.raises(NotAuthenticated):
        user.reset_password(token_hash, "hash-1", at)
    assert user.collect_events() == []
    assert (user.password_hash, user.session_epoch) == ("hash-0", 0)


def test_reset_without_a_requested_token_is_refused() -> None:
    user = new_user()
    with pytest.raises(NotAuthenticated):
        user.reset_password("anything", "hash-1", LATER)


def test_only_the_latest_reset_token_counts() -> None:
    user = user_with_reset_token("first")
    user.request_password_reset("second", NOW + timedelta(minutes=30), NOW)
    with pytest.raises(NotAuthenticated):
        user.reset_password("first", "hash-1", LATER)
    user.reset_password("second", "hash-1", LATER)
    assert user.session_epoch == 1


# --- Claim ------------------------------------------------------------------------------------


def test_a_claims_id_comes_from_the_value_ignoring_case() -> None:
    assert Claim.create_id("email", "Ada@Example.com") == Claim.create_id(
        "email", "ada@example.com"
    )
    assert Claim.create_id("email", "ada") != Claim.create_id("username", "ada")
    claim = Claim(kind="username", value="Ada", owner_id=uuid4(), timestamp=NOW)
    assert claim.value == "ada"


def test_a_held_value_cannot_be_taken_by_another_owner() -> None:
    owner, other = uuid4(), uuid4()
    claim = Claim(kind="email", value="ada@example.com", owner_id=owner, timestamp=NOW)
    claim.collect_events()
    with pytest.raises(Conflict):
        claim.take(other, LATER)
    claim.take(owner, LATER)  # the owner taking it again changes nothing
    assert claim.collect_events() == []
    assert claim.owner_id == owner


def test_only_the_owner_can_release_and_then_anyone_can_take_it() -> None:
    owner, other = uuid4(), uuid4()
    claim = Claim(kind="username", value="ada", owner_id=owner, timestamp=NOW)
    claim.collect_events()
    claim.release(other, LATER)  # not theirs to release
    assert claim.collect_events() == []
    assert claim.owner_id == owner

    claim.release(owner, LATER)
    assert claim.owner_id is None
    claim.take(other, LATER)
    assert claim.owner_id == other
    released, renewed = claim.collect_events()
    assert isinstance(released, Claim.Released)
    assert isinstance(renewed, Claim.Renewed) and renewed.owner_id == other
    with pytest.raises(Conflict):
        claim.take(owner, LATER)


# --- Session ------------------------------------------------------------------------------------


def new_session() -> Session:
    session = Session(id=uuid4(), user_id=uuid4(), token_id=uuid4(), epoch=3, timestamp=NOW)
    session.collect_events()
    return session


def test_rotating_with_the_current_token_issues_the_next() -> None:
    session = new_session()
    first, second, third = session.token_id, uuid4(), uuid4()
    assert session.rotate(first, second, LATER) is True
    assert session.rotate(second, third, LATER) is True
    assert session.token_id == third
    assert [e.token_id for e in session.collect_events()] == [second, third]
    assert not session.ended


def test_a_spent_token_ends_the_session() -> None:
    session = new_session()
    spent, current = session.token_id, uuid4()
    session.rotate(spent, current, LATER)
    session.collect_events()

    assert session.rotate(spent, uuid4(), LATER) is False  # replayed: stolen or copied
    (ended,) = session.collect_events()
    assert isinstance(ended, Session.Ended) and ended.reason == "reuse"
    assert session.ended
    assert session.token_id == current

    with pytest.raises(NotAuthenticated):  # even the current token is now refused
        session.rotate(current, uuid4(), LATER)
    assert session.collect_events() == []


def test_an_ended_session_refuses_to_rotate() -> None:
    session = new_session()
    session.end("logout", LATER)
    session.end("logout", LATER)  # ending twice records once
    assert len(session.collect_events()) == 1
    with pytest.raises(NotAuthenticated):
        session.rotate(session.token_id, uuid4(), LATER)
    assert session.collect_events() == []
