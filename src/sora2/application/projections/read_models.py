"""The projection that folds the event log into the read models the API serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from sora2.application.event_log import event_id
from sora2.application.projections.rows import CreditRow, OrderRow, UserRow, VideoRow
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.orders.order import Order
from sora2.domain.users.session import Session
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

FOLLOWER_NAME = "sora2/read-models"


class ReadModels(Projection[ReadModelView]):
    name = FOLLOWER_NAME

    def __init__(self, view: ReadModelView) -> None:
        super().__init__(view)
        self._handlers: dict[type, Callable[[Any, Tracking], None]] = {
            User.Registered: self._user_registered,
            User.EmailChanged: lambda e, t: self._user_changed(e, t, email=e.email),
            User.UsernameChanged: lambda e, t: self._user_changed(e, t, username=e.username),
            User.AvatarChanged: lambda e, t: self._user_changed(e, t, avatar_key=e.avatar_key),
            User.PasswordChanged: lambda e, t: self._user_changed(
                e, t, session_epoch=e.session_epoch
            ),
            User.PasswordReset: lambda e, t: self._user_changed(
                e, t, session_epoch=e.session_epoch
            ),
            User.RoleChanged: lambda e, t: self._user_changed(
                e, t, role=e.role, session_epoch=e.session_epoch
            ),
            User.Suspended: lambda e, t: self._user_changed(
                e, t, suspended=True, session_epoch=e.session_epoch
            ),
            User.Unsuspended: lambda e, t: self._user_changed(e, t, suspended=False),
            CreditLedger.Rewarded: lambda e, t: self._credit(
                e, t, "REWARD", e.amount, None, e.reason
            ),
            CreditLedger.Recharged: lambda e, t: self._credit(
                e, t, "RECHARGE", e.amount, e.order_id, f"Recharge of {e.amount} credits"
            ),
            CreditLedger.Reserved: lambda e, t: self._credit(
                e, t, "CONSUME", -e.amount, e.video_id, "Video generation"
            ),
            CreditLedger.Refunded: lambda e, t: self._credit(
                e, t, "REFUND", e.amount, e.video_id, "Refund for a failed or cancelled video"
            ),
            CreditLedger.Reversed: lambda e, t: self._credit(
                e, t, "REVERSAL", -e.amount, e.order_id, f"{e.amount} credits of a refunded order"
            ),
            CreditLedger.Adjusted: lambda e, t: self._credit(
                e, t, "ADJUSTMENT", e.amount, e.admin_id, f"Adjustment by an admin: {e.reason}"
            ),
            Session.Started: lambda e, t: self.view.add_session(e.originator_id, e.user_id, t),
            Session.Ended: lambda e, t: self.view.end_session(e.originator_id, t),
            Order.Created: self._order_created,
            Order.Paid: lambda e, t: self.view.update_order(
                e.originator_id, "PAID", e.timestamp, t
            ),
            Order.Failed: lambda e, t: self.view.update_order(e.originator_id, "FAILED", None, t),
            Order.Cancelled: lambda e, t: self.view.update_order(
                e.originator_id, "CANCELLED", None, t
            ),
            Order.Expired: lambda e, t: self.view.update_order(
                e.originator_id, "CANCELLED", None, t
            ),
            Order.Refunded: lambda e, t: self.view.update_order(
                e.originator_id, "REFUNDED", None, t
            ),
            Video.Requested: self._video_requested,
            Video.Started: lambda e, t: self._video_changed(e, t, status="PROCESSING"),
            Video.ProgressReported: lambda e, t: self._video_changed(
                e, t, progress=e.progress, seconds_remaining=e.seconds_remaining
            ),
            Video.Completed: lambda e, t: self._video_changed(
                e,
                t,
                status="COMPLETED",
                progress=100,
                seconds_remaining=0,
                video_key=e.video_key,
                thumbnail_key=e.thumbnail_key,
            ),
            Video.Failed: lambda e, t: self._video_changed(
                e,
                t,
                status="FAILED",
                error=e.error,
                error_code=e.code or None,
                seconds_remaining=None,
            ),
            Video.Cancelled: lambda e, t: self._video_changed(
                e, t, status="CANCELLED", seconds_remaining=None
            ),
            Video.Shared: lambda e, t: self._video_changed(e, t, share_token_hash=e.token_hash),
            Video.ShareRevoked: lambda e, t: self._video_changed(e, t, share_token_hash=None),
            Video.Deleted: lambda e, t: self.view.remove_video(e.originator_id, t),
        }

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        handler = self._handlers.get(type(domain_event))
        if handler is None:
            self.view.skip(tracking)
        else:
            handler(domain_event, tracking)

    def _user_registered(self, e: User.Registered, t: Tracking) -> None:
        row = UserRow(e.originator_id, e.email, e.username, None, e.role, e.timestamp, e.timestamp)
        self.view.add_user(row, t)

    def _user_changed(self, e: Any, t: Tracking, **changes: Any) -> None:
        self.view.update_user(e.originator_id, changes, e.timestamp, t)

    def _credit(self, e: Any, t: Tracking, kind: str, amount: int, ref: Any, text: str) -> None:
        row = CreditRow(event_id(e), e.user_id, amount, e.balance, kind, text, ref, e.timestamp)
        self.view.add_credit(row, t)

    def _order_created(self, e: Order.Created, t: Tracking) -> None:
        row = OrderRow(
            e.originator_id,
            e.user_id,
            e.amount,
            e.credits,
            "PENDING",
            e.payment_method,
            e.timestamp,
            None,
        )
        self.view.add_order(row, t)

    def _video_requested(self, e: Video.Requested, t: Tracking) -> None:
        row = VideoRow(
            e.originator_id,
            e.user_id,
            e.prompt,
            "PENDING",
            0,
            None,
            None,
            None,
            e.duration,
            e.aspect_ratio,
            e.cost,
            None,
            None,
            e.timestamp,
            e.timestamp,
        )
        self.view.add_video(row, t)

    def _video_changed(self, e: Any, t: Tracking, **changes: Any) -> None:
        self.view.update_video(e.originator_id, changes, e.timestamp, t)
