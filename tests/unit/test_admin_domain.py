"""Role changes and suspensions on the User: each names who decided and ends sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from eventsourcing.application import project_aggregate

from sora2.application.moderation import BlockedTerms
from sora2.domain.errors import Conflict, InvalidInput, PromptBlocked
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def user() -> User:
    return User.register(uuid4(), "ann@example.com", "ann", "hash", NOW)


def test_a_role_change_names_who_made_it_and_bumps_the_epoch() -> None:
    ann = user()
    assert ann.change_role("ADMIN", "cli", NOW) is True
    assert (ann.role, ann.session_epoch) == ("ADMIN", 1)
    assert ann.change_role("ADMIN", "cli", NOW) is False  # nothing to record
    with pytest.raises(InvalidInput):
        ann.change_role("ROOT", "cli", NOW)
    with pytest.raises(InvalidInput):
        ann.change_role("USER", "", NOW)
    events = ann.collect_events()
    assert [type(e).__name__ for e in events] == ["Registered", "RoleChanged"]
    assert events[-1].by == "cli"
    assert project_aggregate(None, events).role == "ADMIN"


def test_suspension_names_the_admin_and_ends_sessions_until_lifted() -> None:
    ann, admin = user(), uuid4()
    ann.suspend(admin, "spam", NOW)
    assert ann.suspended and ann.session_epoch == 1
    with pytest.raises(Conflict):
        ann.suspend(admin, "again", NOW)
    ann.unsuspend(admin, NOW)
    with pytest.raises(Conflict):
        ann.unsuspend(admin, NOW)
    events = ann.collect_events()
    assert [(type(e).__name__, e.admin_id) for e in events[1:]] == [
        ("Suspended", admin),
        ("Unsuspended", admin),
    ]
    assert project_aggregate(None, events).suspended is False


def test_an_admins_cancel_and_a_failure_code_are_recorded() -> None:
    admin = uuid4()
    video = Video.request(uuid4(), uuid4(), "a cat", 5, "16:9", 1, NOW)
    video.cancel(NOW, admin)
    assert video.collect_events()[-1].admin_id == admin
    failed = Video.request(uuid4(), uuid4(), "a cat", 5, "16:9", 1, NOW)
    failed.fail("no", NOW, "moderation_blocked")
    assert failed.error_code == "moderation_blocked"
    odd = Video.request(uuid4(), uuid4(), "a cat", 5, "16:9", 1, NOW)
    odd.fail("no", NOW, "made-up")  # an unknown code is a provider error
    assert odd.error_code == "provider_error"


@pytest.mark.parametrize("prompt", ["BAD word", "a bad WORDs", "ＢＡＤ word", "Ünsafe"])
def test_blocked_terms_match_anywhere_in_any_case(prompt: str) -> None:
    policy = BlockedTerms(["bad word", "  ", "ünsafe"])
    if "ＢＡＤ" in prompt:  # full-width letters are other characters: not matched
        policy.check(prompt)
        return
    with pytest.raises(PromptBlocked):
        policy.check(prompt)
    BlockedTerms([]).check(prompt)
