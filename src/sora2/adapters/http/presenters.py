"""Read-model rows → API bodies: URLs, camelCase, money as numbers."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from sora2.adapters.http import schemas
from sora2.application.orders import PaymentOutcome
from sora2.application.projections.rows import CreditRow, OrderRow, Page, UserRow, VideoRow


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


def video(row: VideoRow, public_url: str) -> schemas.Video:
    done = row.status == "COMPLETED"
    base = f"{public_url}/api/videos/{row.id}"
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
        video_url=f"{base}/download" if done else None,
        thumbnail_url=f"{base}/thumbnail" if done else None,
        error=row.error,
    )


def video_status(row: VideoRow) -> schemas.VideoStatus:
    return schemas.VideoStatus(
        str(row.id), row.status, row.progress, row.seconds_remaining, row.error
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
