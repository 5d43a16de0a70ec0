"""Request and response bodies of the HTTP API, as msgspec Structs (camelCase on the wire).

Limits live in the types (`Meta`), so Litestar refuses bad input with a 400 before any
handler runs, and the OpenAPI document shows the same limits. Every string a client sends
is `SingleLineText` or `MultilineText` (or a pattern that implies it, as `Email`): no
control characters reach a command (see sora2.domain.text, which guards the same again).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar.params import HeaderParameter
from msgspec import Meta

from sora2.domain.credits.ledger import MAX_ADJUSTMENT as ADJUSTMENT_LIMIT
from sora2.domain.orders.order import MAX_CREDITS_PER_ORDER
from sora2.domain.text import MULTILINE_PATTERN, SINGLE_LINE_PATTERN
from sora2.domain.users.rules import (
    EMAIL_MAX_LENGTH,
    EMAIL_PATTERN,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    USERNAME_PATTERN,
)
from sora2.domain.videos.video import PROMPT_MAX_LENGTH

SingleLineText = Annotated[str, Meta(pattern=SINGLE_LINE_PATTERN)]
"""Text without control characters (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029)."""
MultilineText = Annotated[str, Meta(pattern=MULTILINE_PATTERN)]
"""As `SingleLineText`, but newline and tab are allowed."""

Email = Annotated[
    str, Meta(pattern=EMAIL_PATTERN, max_length=EMAIL_MAX_LENGTH, examples=["user@example.com"])
]
Password = Annotated[
    SingleLineText, Meta(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
]
AnyPassword = Annotated[SingleLineText, Meta(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
"""A password to check, not to set: no minimum length beyond one character."""
Username = Annotated[str, Meta(pattern=USERNAME_PATTERN, examples=["johndoe"])]
Credits = Annotated[int, Meta(ge=1, le=MAX_CREDITS_PER_ORDER)]
PaymentMethod = Literal["ALIPAY", "WECHAT", "STRIPE"]
Prompt = Annotated[MultilineText, Meta(min_length=1, max_length=PROMPT_MAX_LENGTH)]
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$(?!\n)"

PATTERN_PROBLEMS = {
    SINGLE_LINE_PATTERN: "must not contain control characters",
    MULTILINE_PATTERN: "must not contain control characters other than newline and tab",
    EMAIL_PATTERN: "must be a valid email address, without spaces or control characters",
    USERNAME_PATTERN: "must be 3-32 letters, digits, '_' or '-'",
}
"""What breaking each pattern means, for the 400's message (instead of the regex)."""


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=False, omit_defaults=True):
    pass


class ErrorBody(Body):
    error: str
    message: str
    status_code: int


class Message(Body):
    message: str


# --- auth -------------------------------------------------------------------------------


class RegisterRequest(Body):
    email: Email
    password: Password
    username: Username


class LoginRequest(Body):
    email: Annotated[SingleLineText, Meta(min_length=1, max_length=EMAIL_MAX_LENGTH)]
    password: AnyPassword


class ForgotPasswordRequest(Body):
    email: Annotated[SingleLineText, Meta(min_length=1, max_length=EMAIL_MAX_LENGTH)]


class ResetPasswordRequest(Body):
    token: Annotated[SingleLineText, Meta(min_length=1, max_length=512)]
    password: Password


class User(Body):
    id: str
    email: str
    username: str
    role: Literal["USER", "ADMIN"]
    created_at: datetime
    updated_at: datetime
    avatar_url: str | None = None


class AuthResponse(Body):
    user: User
    access_token: str


class AccessTokenResponse(Body):
    access_token: str


# --- users ------------------------------------------------------------------------------


class UpdateProfileRequest(Body):
    """A new email also needs `currentPassword`; the old address is told of the change."""

    username: Username | None = None
    email: Email | None = None
    current_password: AnyPassword | None = None


class ChangePasswordRequest(Body):
    current_password: AnyPassword
    new_password: Password


class PasswordChanged(Body):
    message: str
    access_token: str


# --- credits and orders -------------------------------------------------------------------


class Balance(Body):
    balance: int


CreditType = Literal["RECHARGE", "CONSUME", "REFUND", "REWARD", "REVERSAL", "ADJUSTMENT"]
FailureCode = Literal[
    "moderation_blocked",
    "provider_error",
    "provider_unavailable",
    "timeout",
    "render_error",
    "internal_error",
]


class Credit(Body):
    id: str
    user_id: str
    amount: int
    balance: int
    type: CreditType
    description: str
    created_at: datetime


class CreditPage(Body):
    items: list[Credit]
    total: int
    page: int
    limit: int
    total_pages: int


class OrderRequest(Body):
    credits: Credits
    payment_method: PaymentMethod


class Order(Body):
    id: str
    user_id: str
    amount: float
    credits: int
    status: Literal["PENDING", "PAID", "FAILED", "CANCELLED", "REFUNDED"]
    payment_method: PaymentMethod
    created_at: datetime
    paid_at: datetime | None = None


class OrderPage(Body):
    items: list[Order]
    total: int
    page: int
    limit: int
    total_pages: int


class Payment(Body):
    """What paying an order did: the order as it is now, and the provider's next step.

    sandbox: `paid` true, nothing to do. stripe: open `redirectUrl` (Stripe Checkout).
    alipay: show `qrCode` (an `https://qr.alipay.com/…` link) as a QR code for the Alipay
    app. wechat: show `qrCode` (WeChat Pay's `weixin://wxpay/bizpayurl?pr=…` code_url) as a
    QR code for WeChat. Scan before `expiresAt`; the order turns PAID once the provider
    confirms, so poll `GET /api/orders/{id}` until then.
    """

    order: Order
    provider: Annotated[
        Literal["sandbox", "stripe", "alipay", "wechat"],
        Meta(description="who takes the payment"),
    ]
    paid: Annotated[bool, Meta(description="true when the credits were added already")]
    redirect_url: Annotated[
        str | None, Meta(description="stripe: the hosted payment page to send the user to")
    ] = None
    qr_code: Annotated[
        str | None,
        Meta(description="alipay, wechat: the text to render as a QR code for the user to scan"),
    ] = None
    expires_at: Annotated[
        datetime | None,
        Meta(description="alipay, wechat: the provider stops taking this payment then"),
    ] = None


# --- videos -------------------------------------------------------------------------------


class GenerateRequest(Body):
    prompt: Prompt
    duration: Literal[5, 10, 15, 20] = 5
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"


SignedUrl = Annotated[
    str,
    Meta(
        description="A signed link that needs no header (`<video src>`, `<img src>`), valid "
        "for MEDIA_URL_TTL (default 1 hour); then 403. Fetch the video again for a fresh one."
    ),
]


class Video(Body):
    id: str
    user_id: str
    prompt: str
    status: Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]
    progress: int
    duration: int
    aspect_ratio: str
    created_at: datetime
    updated_at: datetime
    video_url: SignedUrl | None = None
    thumbnail_url: SignedUrl | None = None
    error: str | None = None
    events_url: Annotated[
        str | None,
        Meta(
            description="A signed link to this video's `text/event-stream` (GET, no header "
            "needed: `new EventSource(eventsUrl)`), valid for MEDIA_URL_TTL."
        ),
    ] = None
    error_code: FailureCode | None = None  # why it FAILED, for programs


class VideoPage(Body):
    items: list[Video]
    total: int
    page: int
    limit: int
    total_pages: int


class VideoStatus(Body):
    """Always carries `estimatedTimeRemaining` (null while unknown); `error` once FAILED."""

    id: str
    status: Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]
    progress: int
    estimated_time_remaining: int | None  # no default: encoded even when null
    error: str | None = None
    error_code: FailureCode | None = None


class Share(Body):
    share_url: str
    token: str


# --- admin -------------------------------------------------------------------------------

Reason = Annotated[
    SingleLineText, Meta(min_length=1, max_length=500, examples=["duplicate signup bonus"])
]


class AdminUser(Body):
    """A user as support sees them: the account, its state and its balance."""

    id: str
    email: str
    username: str
    role: Literal["USER", "ADMIN"]
    suspended: bool
    balance: int
    created_at: datetime
    updated_at: datetime
    avatar_url: str | None = None


class AdminUserPage(Body):
    items: list[AdminUser]
    total: int
    page: int
    limit: int
    total_pages: int


class AdminUserDetail(Body):
    """The user, their balance, and their latest credit entries, orders and videos."""

    id: str
    email: str
    username: str
    role: Literal["USER", "ADMIN"]
    suspended: bool
    balance: int
    created_at: datetime
    updated_at: datetime
    transactions: list[Credit]
    orders: list[Order]
    videos: list[Video]
    avatar_url: str | None = None


class AdjustCreditsRequest(Body, forbid_unknown_fields=True):
    amount: Annotated[
        int,
        Meta(
            ge=-ADJUSTMENT_LIMIT,
            le=ADJUSTMENT_LIMIT,
            description="Credits to add (positive) or take away (negative); not 0",
            examples=[25, -10],
        ),
    ]
    reason: Reason


class Adjustment(Body):
    """The ADJUSTMENT entry made: `balance` is the balance after it."""

    id: str
    user_id: str
    amount: int
    balance: int
    type: Literal["ADJUSTMENT"]
    reason: str
    admin_id: str
    created_at: datetime


class SuspendRequest(Body, forbid_unknown_fields=True):
    reason: Reason = "suspended by an admin"


class RefundRequest(Body, forbid_unknown_fields=True):
    reason: Reason = "refunded by an admin"


class ProcessorStuck(Body):
    position: int
    event_type: str
    error: str


class ProcessorStatus(Body):
    """One follower of the log: how far it got, and the event it cannot get past, if any."""

    name: str
    position: int
    stuck: ProcessorStuck | None = None


class Health(Body):
    status: str
    processors: list[ProcessorStatus] | None = None
    job_sweeps: int | None = None  # sweeps for unfinished videos so far (a process that renders)
    # each configured dependency (database, redis, nats, storage, processors): "ok"
    checks: dict[str, str] | None = None


class NotReady(Body):
    """The error body, plus each dependency's answer: "ok", or what is wrong with it."""

    error: str
    message: str
    status_code: int
    checks: dict[str, str]


IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retry-safe key (1-255 visible ASCII characters, per user, kept 24 h): the "
        "same key replays the first answer; the same key with another body answers 409.",
    ),
]
