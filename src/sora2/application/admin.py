"""What an operator of the platform may do: make admins, look users up, correct balances,
refund orders, suspend accounts, cancel any video, see every video.

Every action is an event naming who did it (the admin's id, or "cli" for the operator's
command line), so the log alone tells who changed what. Role changes and suspensions bump
the user's session epoch: every session started before them ends at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from uuid import UUID

from sora2.application.answers import user_row
from sora2.application.event_log import EventLog, event_id, retry_on_conflict
from sora2.application.orders import Orders
from sora2.application.ports import Clock
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.projections.rows import (
    CreditRow,
    OrderRow,
    Page,
    UserBalance,
    UserRow,
    VideoRow,
)
from sora2.application.projections.view import ReadModelView
from sora2.application.videos import Videos
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict, NotFound
from sora2.domain.text import check_text
from sora2.domain.users.claim import Claim
from sora2.domain.users.rules import normalize_email
from sora2.domain.users.user import User

RECENT = 20  # entries, orders and videos shown on a user's page
CLI = "cli"  # who a role change made with `sora2 admin grant|revoke` names


@dataclass(frozen=True)
class UserDetail:
    """What support needs on one screen."""

    user: UserRow
    balance: int
    credits: Page[CreditRow]
    orders: Page[OrderRow]
    videos: Page[VideoRow]


@dataclass(frozen=True)
class RoleChange:
    user: UserRow
    changed: bool  # False: the user already had that role (nothing recorded)


class Admin:
    def __init__(
        self,
        log: EventLog,
        views: ReadModelView,
        seen: ReadYourWrites,
        videos: Videos,
        orders: Orders,
        clock: Clock,
    ) -> None:
        self.log = log
        self.views = views
        self.seen = seen
        self.videos = videos
        self.orders = orders
        self.clock = clock

    # --- roles (the operator's command line) ---------------------------------------------

    def set_role(self, email: str, role: str, by: str = CLI) -> RoleChange:
        """Make the account of `email` an ADMIN or a USER; its sessions end."""
        user_id = self._user_by_email(email)

        def decide() -> tuple[int | None, bool, User]:
            user = self.log.load(User, user_id, "user")
            changed = user.change_role(role, by, self.clock.now())
            return self.log.commit(user), changed, user

        position, changed, user = retry_on_conflict(decide)
        self.seen.note(user_id, position, revokes=True)
        return RoleChange(user_row(user), changed)

    # --- looking users up ----------------------------------------------------------------

    def users(self, query: str | None, page: int, limit: int) -> Page[UserBalance]:
        self.seen.wait_latest()
        return self.views.search_users(query.strip() if query else None, page, limit)

    def user(self, admin_id: UUID, user_id: UUID) -> UserDetail:
        self.seen.wait(admin_id)
        self.seen.wait(user_id)
        row = self.views.user(user_id)
        if row is None:
            found = self.log.find(User, user_id)  # registered a moment ago elsewhere
            if found is None:
                raise NotFound("user not found")
            row = user_row(found)
        return UserDetail(
            row,
            self.views.balance_of(user_id),
            self.views.credits(user_id, None, 1, RECENT),
            self.views.orders(user_id, None, 1, RECENT),
            self.views.videos(user_id, None, 1, RECENT),
        )

    # --- money ----------------------------------------------------------------------------

    def adjust_credits(self, admin_id: UUID, user_id: UUID, amount: int, reason: str) -> CreditRow:
        """An ADJUSTMENT entry of `amount` (either sign) naming the admin and the reason;
        Conflict if it would take the balance below zero."""
        check_text(reason, "reason")
        self._existing(user_id)

        def decide() -> tuple[int | None, CreditLedger]:
            ledger = self.log.load(CreditLedger, CreditLedger.create_id(user_id), "ledger")
            ledger.adjust(amount, admin_id, reason.strip(), self.clock.now())
            return self.log.commit(ledger), ledger

        position, ledger = retry_on_conflict(decide)
        self._noted(admin_id, user_id, position)
        entry = SimpleNamespace(originator_id=ledger.id, originator_version=ledger.version)
        return CreditRow(
            event_id(entry),  # the id the read models give the entry
            user_id,
            amount,
            ledger.balance,
            "ADJUSTMENT",
            f"Adjustment by an admin: {reason.strip()}",
            admin_id,
            ledger.modified_on,
        )

    def refund_order(self, admin_id: UUID, order_id: UUID, reason: str) -> OrderRow:
        """A PAID order's money back through its provider, its credits taken back (REVERSAL);
        the Refunded event names the admin and the reason. 409 if the credits are spent."""
        check_text(reason, "reason")
        return self.orders.refund(order_id, admin_id=admin_id, reason=reason)

    # --- accounts ------------------------------------------------------------------------

    def suspend(self, admin_id: UUID, user_id: UUID, reason: str) -> UserRow:
        """Stop the account: its sessions end, sign-in answers 403 until unsuspended."""
        check_text(reason, "reason")
        if admin_id == user_id:
            raise Conflict("an admin cannot suspend their own account")
        return self._change_user(
            admin_id, user_id, lambda user: user.suspend(admin_id, reason, self.clock.now())
        )

    def unsuspend(self, admin_id: UUID, user_id: UUID) -> UserRow:
        return self._change_user(
            admin_id, user_id, lambda user: user.unsuspend(admin_id, self.clock.now())
        )

    # --- videos ---------------------------------------------------------------------------

    def cancel_video(self, admin_id: UUID, video_id: UUID) -> VideoRow:
        return self.videos.cancel_for_admin(admin_id, video_id)

    def all_videos(self, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        return self.videos.all(status, page, limit)

    # --- helpers -------------------------------------------------------------------------

    def _change_user(
        self, admin_id: UUID, user_id: UUID, change: Callable[[User], None]
    ) -> UserRow:
        def decide() -> tuple[int | None, User]:
            user = self.log.load(User, user_id, "user")
            change(user)
            return self.log.commit(user), user

        position, user = retry_on_conflict(decide)
        self.seen.note(user_id, position, revokes=True)
        self.seen.note(admin_id, position)
        return user_row(user)

    def _noted(self, admin_id: UUID, user_id: UUID, position: int | None) -> None:
        self.seen.note(user_id, position)
        self.seen.note(admin_id, position)

    def _existing(self, user_id: UUID) -> None:
        if self.log.find(User, user_id) is None:
            raise NotFound("user not found")

    def _user_by_email(self, email: str) -> UUID:
        claim = self.log.find(Claim, Claim.create_id("email", normalize_email(email)))
        if claim is None or claim.owner_id is None:
            raise NotFound(f"no user has the email {normalize_email(email)}")
        return claim.owner_id
