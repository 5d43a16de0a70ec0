"""`ledger verify` on admins' adjustments: one by an ADMIN, either sign, verifies and counts
in the balance arithmetic; one that names nobody, or a user who was not an ADMIN at the
time, is a problem; none can take the balance below zero unnoticed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from sora2.application.audit import LedgerAudit
from sora2.bootstrap import Sora2, audit_store, bootstrap
from sora2.domain.credits.ledger import CreditLedger
from tests.conftest import FastHasher
from tests.support.backends import sqlite_settings


@pytest.fixture
def sora2(tmp_path: Path) -> Iterator[Sora2]:
    app = bootstrap(sqlite_settings(tmp_path), hasher=FastHasher())
    app.jobs.shutdown()
    try:
        yield app
    finally:
        app.close()


def register(sora2: Sora2, name: str) -> UUID:
    return sora2.accounts.register(f"{name}@example.com", name, "password123").user.id


def problems(sora2: Sora2) -> list[str]:
    return [problem.message for problem in LedgerAudit(audit_store(sora2)).verify().problems]


def forge(sora2: Sora2, user_id: UUID, amount: int, admin_id: UUID | None) -> None:
    """An Adjusted event the domain would refuse, appended to the log as it stands."""
    ledger = sora2.log.load(CreditLedger, CreditLedger.create_id(user_id))
    now = sora2.clock.now()
    ledger._adjusted(user_id, amount, ledger.balance + amount, admin_id, "forged", now)
    sora2.read_models.wait_for(sora2.log.commit(ledger))


def test_adjustments_by_an_admin_verify_and_count_in_the_balance(sora2: Sora2) -> None:
    root, bob = register(sora2, "root"), register(sora2, "bob")
    assert sora2.admin.set_role("root@example.com", "ADMIN").changed
    sora2.admin.adjust_credits(root, bob, 15, "goodwill")
    sora2.admin.adjust_credits(root, bob, -20, "duplicate bonus")
    audit = LedgerAudit(audit_store(sora2))
    assert audit.verify().problems == []
    history = audit.history(bob)
    assert [(e.type, e.amount, e.balance, e.admin_id) for e in history] == [
        ("REWARD", 10, 10, None),
        ("ADJUSTMENT", 15, 25, root),
        ("ADJUSTMENT", -20, 5, root),
    ]
    assert history[-1].reason == "duplicate bonus"
    assert sora2.views.balance_of(bob) == audit.balance(bob) == 5


def test_an_adjustment_by_no_admin_or_a_plain_user_is_a_problem(sora2: Sora2) -> None:
    bob, mallory = register(sora2, "bob"), register(sora2, "mallory")
    forge(sora2, bob, 5, None)
    forge(sora2, bob, 7, mallory)
    forge(sora2, bob, 9, uuid4())

    found = problems(sora2)

    assert len(found) == 3, found
    assert "names no admin" in found[0]
    assert f"names {mallory}, who was not an ADMIN" in found[1]
    assert "who was not an ADMIN" in found[2]


def test_an_admin_revoked_before_the_adjustment_is_a_problem(sora2: Sora2) -> None:
    root, bob = register(sora2, "root"), register(sora2, "bob")
    sora2.admin.set_role("root@example.com", "ADMIN")
    sora2.admin.adjust_credits(root, bob, 1, "fine")
    sora2.admin.set_role("root@example.com", "USER")
    forge(sora2, bob, 2, root)

    (problem,) = problems(sora2)
    assert f"names {root}, who was not an ADMIN at the time" in problem


def test_a_forged_adjustment_below_zero_is_a_problem(sora2: Sora2) -> None:
    root, bob = register(sora2, "root"), register(sora2, "bob")
    sora2.admin.set_role("root@example.com", "ADMIN")
    forge(sora2, bob, -11, root)

    (problem,) = problems(sora2)
    assert "balance goes negative (-1)" in problem
