"""Read-model rows → API bodies: URLs, camelCase, money as numbers."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from sora2.adapters.http import schemas
from sora2.application.admin import UserDetail
from sora2.application.orders import PaymentOutcome
from sora2.application.projections.rows import (
    CreditRow,
    OrderRow,
    Page,
    UserBalance,
    UserRow,
    VideoRow,
)
from sora2.application.signed_links import SignedLinks

MEDIA_PATH = "/api/media/"


def user(row: UserRow, public_url: str) -> schemas.User:
    avatar = f"{public_url}/api/files/{row.avatar_key}" if row.avatar_key else None
    return schemas.User(
        str(row.id), row.email, row.username, row.role, row.created_at, row.updated_at, avatar
    )


def credit(row: CreditRow) -> schemas.Credit:
    return schemas.Credit(
        str(row.id),
        str(row.user_id),
        row.amount,
        row.balance,
        row.type,
        row.description,
        row.created_at,
    )


def order(row: OrderRow) -> schemas.Order:
    return schemas.Order(
        str(row.id),
        str(row.user_id),
        float(Decimal(row.amount)),
        row.credits,
        row.status,
        row.payment_method,
        row.created_at,
        row.paid_at,
    )


def video(row: VideoRow, public_url: str, links: SignedLinks) -> schemas.Video:
    """Its file URLs are signed links, so a page can use them in `<video>` and `<img>`."""
    done = row.status == "COMPLETED"

    def media(key: str | None) -> str | None:
        return f"{public_url}{links.sign(MEDIA_PATH + key)}" if done and key else None

    return schemas.Video(
        str(row.id),
        str(row.user_id),
        row.prompt,
        row.status,
        row.progress,
        row.duration,
        row.aspect_ratio,
        row.created_at,
        row.updated_at,
        video_url=media(row.video_key),
        thumbnail_url=media(row.thumbnail_key),
        error=row.error,
        events_url=f"{public_url}{links.sign(events_path(row.id))}",
        error_code=row.error_code,
    )


def events_path(video_id: object) -> str:
    return f"/api/videos/{video_id}/events"


def video_status(row: VideoRow) -> schemas.VideoStatus:
    return schemas.VideoStatus(
        str(row.id), row.status, row.progress, row.seconds_remaining, row.error, row.error_code
    )


def page_fields(page: Page[Any]) -> dict[str, int]:
    return {
        "total": page.total,
        "page": page.page,
        "limit": page.limit,
        "total_pages": math.ceil(page.total / page.limit) if page.total else 0,
    }


def payment(outcome: PaymentOutcome) -> schemas.Payment:
    i = outcome.instructions
    return schemas.Payment(
        order(outcome.order), i.provider, i.paid, i.redirect_url, i.qr_code, i.expires_at
    )


def admin_user(row: UserRow, balance: int, public_url: str) -> schemas.AdminUser:
    shown = user(row, public_url)
    return schemas.AdminUser(
        shown.id,
        shown.email,
        shown.username,
        shown.role,
        row.suspended,
        balance,
        shown.created_at,
        shown.updated_at,
        shown.avatar_url,
    )


def admin_users(page: Page[UserBalance], public_url: str) -> schemas.AdminUserPage:
    items = [admin_user(u.user, u.balance, public_url) for u in page.items]
    return schemas.AdminUserPage(items, **page_fields(page))


def admin_user_detail(
    detail: UserDetail, public_url: str, links: SignedLinks
) -> schemas.AdminUserDetail:
    shown = admin_user(detail.user, detail.balance, public_url)
    return schemas.AdminUserDetail(
        shown.id,
        shown.email,
        shown.username,
        shown.role,
        shown.suspended,
        shown.balance,
        shown.created_at,
        shown.updated_at,
        [credit(r) for r in detail.credits.items],
        [order(r) for r in detail.orders.items],
        [video(r, public_url, links) for r in detail.videos.items],
        shown.avatar_url,
    )


def adjustment(row: CreditRow, reason: str) -> schemas.Adjustment:
    return schemas.Adjustment(
        str(row.id),
        str(row.user_id),
        row.amount,
        row.balance,
        "ADJUSTMENT",
        reason,
        str(row.reference_id),
        row.created_at,
    )
