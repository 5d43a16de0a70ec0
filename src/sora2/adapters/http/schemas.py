"""Request and response bodies of the HTTP API, as msgspec Structs (camelCase on the wire).

Limits live in the types (`Meta`), so Litestar refuses bad input with a 400 before any
handler runs, and the OpenAPI document shows the same limits. Every string a client sends
is `SingleLineText` or `MultilineText` (or a pattern that implies it, as `Email`): no
control characters reach a command (see sora2.domain.text, which guards the same again).
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated
from uuid import UUID

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
Prompt = Annotated[MultilineText, Meta(min_length=1, max_length=PROMPT_MAX_LENGTH)]
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$(?!\n)"

PATTERN_PROBLEMS = {
    SINGLE_LINE_PATTERN: "must not contain control characters",
    MULTILINE_PATTERN: "must not contain control characters other than newline and tab",
    EMAIL_PATTERN: "must be a valid email address, without spaces or control characters",
    USERNAME_PATTERN: "must be 3-32 letters, digits, '_' or '-'",
}
"""What breaking each pattern means, for the 400's message (instead of the regex)."""


# Enums are classes, not Literals: each becomes a named component of the OpenAPI document,
# and its member names become the generated SDKs' names (x-enum-varnames), not VALUE_0.


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"


class VideoState(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class AspectRatio(StrEnum):
    LANDSCAPE_16_9 = "16:9"
    PORTRAIT_9_16 = "9:16"
    SQUARE_1_1 = "1:1"


class Duration(IntEnum):
    """Video length in seconds."""

    SECONDS_5 = 5
    SECONDS_10 = 10
    SECONDS_15 = 15
    SECONDS_20 = 20


class CreditType(StrEnum):
    RECHARGE = "RECHARGE"
    CONSUME = "CONSUME"
    REFUND = "REFUND"
    REWARD = "REWARD"
    REVERSAL = "REVERSAL"
    ADJUSTMENT = "ADJUSTMENT"


class FailureCode(StrEnum):
    """Why a video FAILED, for programs (the `error` text is for people)."""

    MODERATION_BLOCKED = "moderation_blocked"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    TIMEOUT = "timeout"
    RENDER_ERROR = "render_error"
    INTERNAL_ERROR = "internal_error"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


class PaymentProvider(StrEnum):
    SANDBOX = "sandbox"
    STRIPE = "stripe"
    ALIPAY = "alipay"
    WECHAT = "wechat"


class PaymentMethod(StrEnum):
    ALIPAY = "ALIPAY"
    WECHAT = "WECHAT"
    STRIPE = "STRIPE"


class Body(msgspec.Struct, rename="camel", omit_defaults=True):
    """A response body: clients should ignore fields they do not know yet."""


class RequestBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """A request body: a field the API does not know is refused (400), never ignored."""


class FieldProblem(Body):
    """What is wrong with one field of the input (`field` is its name on the wire)."""

    field: str
    message: str


class ErrorBody(Body):
    """Every error: a short name, a human message, the status; a 400 may list each field."""

    error: str
    message: str
    status_code: int
    details: list[FieldProblem] | None = None


class Message(Body):
    message: str


# --- auth -------------------------------------------------------------------------------


class RegisterRequest(RequestBody):
    email: Email
    password: Password
    username: Username


class LoginRequest(RequestBody):
    email: Annotated[SingleLineText, Meta(min_length=1, max_length=EMAIL_MAX_LENGTH)]
    password: AnyPassword


class ForgotPasswordRequest(RequestBody):
    email: Annotated[SingleLineText, Meta(min_length=1, max_length=EMAIL_MAX_LENGTH)]


class ResetPasswordRequest(RequestBody):
    token: Annotated[SingleLineText, Meta(min_length=1, max_length=512)]
    password: Password


class User(Body):
    id: UUID
    email: str
    username: str
    role: Role
    created_at: datetime
    updated_at: datetime
    avatar_url: str | None = None


class AuthResponse(Body):
    user: User
    access_token: str


class AccessTokenResponse(Body):
    access_token: str


# --- users ------------------------------------------------------------------------------


class UpdateProfileRequest(RequestBody):
    """A new email also needs `currentPassword`; the old address is told of the change."""

    username: Username | None = None
    email: Email | None = None
    current_password: AnyPassword | None = None


class ChangePasswordRequest(RequestBody):
    current_password: AnyPassword
    new_password: Password


class PasswordChanged(Body):
    message: str
    access_token: str


# --- credits and orders -------------------------------------------------------------------


class Balance(Body):
    balance: int


class Credit(Body):
    id: UUID
    user_id: UUID
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


class OrderRequest(RequestBody):
    credits: Credits
    payment_method: PaymentMethod


class Order(Body):
    id: UUID
    user_id: UUID
    amount: float
    credits: int
    status: OrderStatus
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
    provider: Annotated[PaymentProvider, Meta(description="who takes the payment")]
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


class GenerateRequest(RequestBody):
    prompt: Prompt
    duration: Duration = Duration.SECONDS_5
    aspect_ratio: AspectRatio = AspectRatio.LANDSCAPE_16_9


SignedUrl = Annotated[
    str,
    Meta(
        description="A signed link that needs no header (`<video src>`, `<img src>`), valid "
        "for MEDIA_URL_TTL (default 1 hour); then 403. Fetch the video again for a fresh one."
    ),
]


class Video(Body):
    id: UUID
    user_id: UUID
    prompt: str
    status: VideoState
    progress: int
    duration: int
    aspect_ratio: AspectRatio
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

    id: UUID
    status: VideoState
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

    id: UUID
    email: str
    username: str
    role: Role
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

    id: UUID
    email: str
    username: str
    role: Role
    suspended: bool
    balance: int
    created_at: datetime
    updated_at: datetime
    transactions: list[Credit]
    orders: list[Order]
    videos: list[Video]
    avatar_url: str | None = None


class AdjustCreditsRequest(RequestBody):
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

    id: UUID
    user_id: UUID
    amount: int
    balance: int
    type: CreditType  # always ADJUSTMENT
    reason: str
    admin_id: UUID
    created_at: datetime


class SuspendRequest(RequestBody):
    reason: Reason = "suspended by an admin"


class RefundRequest(RequestBody):
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
    # this process applies it; several processes on one PostgreSQL log: one leads each
    # processor, the others follow its position (and take over when it stops)
    leading: bool | None = None


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
