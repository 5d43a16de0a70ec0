"""Access tokens: verified once per token text, never past their expiry."""

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import jwt
import pytest

from sora2.adapters.security.tokens import TokenSigner
from sora2.domain.errors import NotAuthenticated


def signer(ttl: timedelta = timedelta(minutes=15)) -> TokenSigner:
    return TokenSigner("a" * 32, "r" * 32, ttl, timedelta(days=7))


def test_claims_come_back_the_same_each_time() -> None:
    tokens, user, session = signer(), uuid4(), uuid4()
    token = tokens.access_token(user, session, 3, datetime.now(UTC), role="ADMIN")
    first, second = tokens.read_access(token), tokens.read_access(token)
    assert first == second
    assert (first.user_id, first.session_id, first.epoch, first.role) == (user, session, 3, "ADMIN")


def test_a_remembered_token_still_expires() -> None:
    tokens = signer(timedelta(seconds=1))
    issued = datetime.now(UTC).replace(microsecond=0)
    token = tokens.access_token(uuid4(), uuid4(), 0, issued)
    tokens.read_access(token)  # verified and remembered
    expiry = (issued + timedelta(seconds=1)).timestamp()
    while time.time() < expiry:  # the condition itself, not a guess at how long
        time.sleep(0.05)
    with pytest.raises(NotAuthenticated, match="expired"):
        tokens.read_access(token)


def test_a_token_differing_in_one_character_is_verified_on_its_own() -> None:
    tokens = signer()
    token = tokens.access_token(uuid4(), uuid4(), 0, datetime.now(UTC))
    tokens.read_access(token)
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(NotAuthenticated):
        tokens.read_access(forged)


def test_a_refresh_token_never_passes_for_an_access_token() -> None:
    tokens = signer()
    refresh = tokens.refresh_token(uuid4(), uuid4(), datetime.now(UTC))
    with pytest.raises(NotAuthenticated):
        tokens.read_access(refresh)
    assert jwt.decode(refresh, "r" * 32, algorithms=["HS256"])["typ"] == "refresh"
