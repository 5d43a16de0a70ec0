"""/api/admin: what an operator of the platform does for and about users.

Every route needs an ADMIN's access token. The check is a guard, so it runs before the
request is read: a USER gets 403 whatever the body, and an unknown token 401.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import anyio
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, JSONBody, QueryParameter

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY, current_admin
from sora2.adapters.http.controllers.credits import PageNumber, PageSize
from sora2.adapters.http.errors import documented
from sora2.application.projections.rows import UserRow
from sora2.bootstrap import Sora2

Search = Annotated[
    schemas.SingleLineText | None,
    QueryParameter(max_length=320, description="part of an email or username, any case"),
]


async def admins_only(connection: Request, _: BaseRouteHandler) -> None:
    """401 without a live session, 403 unless it is an ADMIN's; the admin for the handler."""
    sora2: Sora2 = connection.app.state.sora2
    admin = await anyio.to_thread.run_sync(current_admin, connection, sora2)
    connection.state.admin = admin


def the_admin(request: Request) -> UserRow:
    return request.state.admin


class AdminController(Controller):
    path = "/api/admin"
    tags = ["Admin"]
    security = BEARER_SECURITY
    guards = [admins_only]
    dependencies = {"admin": Provide(the_admin, sync_to_thread=False)}
    opt = {"operation_prefix": "admin"}  # adminListVideos beside the user's listVideos

    @get(
        "/users",
        sync_to_thread=True,
        responses=documented(400, 401, 403, 429),
        summary="Find users by email or username, newest first, each with their balance",
    )
    def list_users(
        self,
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        q: Search = None,
        page: PageNumber = 1,
        limit: PageSize = 20,
    ) -> schemas.AdminUserPage:
        result = sora2.admin.users(q, page, limit)
        return presenters.admin_users(result, sora2.settings.public_url)

    @get(
        "/users/{user_id:uuid}",
        sync_to_thread=True,
        responses=documented(400, 401, 403, 404, 429),
        summary="A user's profile, balance, latest credit entries, orders and videos",
    )
    def get_user(
        self,
        user_id: FromPath[UUID],
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.AdminUserDetail:
        detail = sora2.admin.user(admin.id, user_id)
        return presenters.admin_user_detail(detail, sora2.settings.public_url, sora2.links)

    @post(
        "/users/{user_id:uuid}/credits",
        status_code=201,
        sync_to_thread=True,
        responses=documented(400, 401, 403, 404, 409, 429),
        summary="Add or take away credits: an ADJUSTMENT entry naming the admin and reason",
        description="A negative amount that would take the balance below zero answers 409 "
        "and changes nothing. The entry shows in the user's transactions and in "
        "`sora2 ledger history`.",
    )
    def adjust_credits(
        self,
        user_id: FromPath[UUID],
        data: JSONBody[schemas.AdjustCreditsRequest],
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.Adjustment:
        row = sora2.admin.adjust_credits(admin.id, user_id, data.amount, data.reason)
        return presenters.adjustment(row, data.reason.strip())

    @post(
        "/users/{user_id:uuid}/suspend",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 403, 404, 409, 429),
        summary="Suspend the account: its sessions end and signing in answers 403",
        description="The body (a reason) is optional.",
    )
    def suspend(
        self,
        user_id: FromPath[UUID],
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        data: JSONBody[schemas.SuspendRequest | None] = None,
    ) -> schemas.AdminUser:
        reason = (data or schemas.SuspendRequest()).reason.strip() or "suspended by an admin"
        row = sora2.admin.suspend(admin.id, user_id, reason)
        balance = sora2.views.balance_of(user_id)
        return presenters.admin_user(row, balance, sora2.settings.public_url)

    @post(
        "/users/{user_id:uuid}/unsuspend",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 403, 404, 409, 429),
        summary="Lift a suspension: the user can sign in again",
    )
    def unsuspend(
        self,
        user_id: FromPath[UUID],
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.AdminUser:
        row = sora2.admin.unsuspend(admin.id, user_id)
        balance = sora2.views.balance_of(user_id)
        return presenters.admin_user(row, balance, sora2.settings.public_url)

    @post(
        "/orders/{order_id:uuid}/refund",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 403, 404, 409, 429, 503),
        summary="Refund a PAID order: its money back, its credits taken back (REVERSAL)",
        description="The provider refunds first. Refused with 409 (nothing refunded) unless "
        "the user still holds the order's credits unspent. The body (a reason) is optional.",
    )
    def refund_order(
        self,
        order_id: FromPath[UUID],
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        data: JSONBody[schemas.RefundRequest | None] = None,
    ) -> schemas.Order:
        reason = (data or schemas.RefundRequest()).reason.strip() or "refunded by an admin"
        return presenters.order(sora2.admin.refund_order(admin.id, order_id, reason))

    @get(
        "/videos",
        sync_to_thread=True,
        responses=documented(400, 401, 403, 429),
        summary="Videos of every user, newest first",
    )
    def list_videos(
        self,
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        page: PageNumber = 1,
        limit: PageSize = 20,
        status: Annotated[schemas.VideoState | None, QueryParameter()] = None,
    ) -> schemas.VideoPage:
        result = sora2.admin.all_videos(status and status.value, page, limit)
        base = sora2.settings.public_url
        return schemas.VideoPage(
            [presenters.video(r, base, sora2.links) for r in result.items],
            **presenters.page_fields(result),
        )

    @post(
        "/videos/{video_id:uuid}/cancel",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 403, 404, 409, 429),
        summary="Cancel any user's PENDING or PROCESSING video; its credits are refunded",
    )
    def cancel_video(
        self,
        video_id: FromPath[UUID],
        admin: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.Video:
        row = sora2.admin.cancel_video(admin.id, video_id)
        return presenters.video(row, sora2.settings.public_url, sora2.links)
