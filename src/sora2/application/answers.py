"""What a command answers: rows built from the aggregates it just saved.

A command never reads the read models back: the aggregates it decided with already hold
the answer, so it cannot see a view half-way, wait on one, or fail after its commit
because a view is slow.
"""

from __future__ import annotations

from sora2.application.projections.rows import OrderRow, UserRow, VideoRow
from sora2.domain.orders.order import Order
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video


def user_row(user: User) -> UserRow:
    return UserRow(
        user.id,
        user.email,
        user.username,
        user.avatar_key,
        user.role,
        user.created_on,
        user.modified_on,
        user.session_epoch,
        user.suspended,
    )


def order_row(order: Order) -> OrderRow:
    return OrderRow(
        order.id,
        order.user_id,
        order.amount,
        order.credits,
        order.status,
        order.payment_method,
        order.created_on,
        order.paid_at,
    )


def video_row(video: Video) -> VideoRow:
    return VideoRow(
        video.id,
        video.user_id,
        video.prompt,
        video.status,
        video.progress,
        video.seconds_remaining,
        video.video_key,
        video.thumbnail_key,
        video.duration,
        video.aspect_ratio,
        video.cost,
        video.error,
        video.share_token_hash,
        video.created_on,
        video.modified_on,
        video.error_code,
    )
