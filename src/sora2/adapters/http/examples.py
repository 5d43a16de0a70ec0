"""One example of each body, for the OpenAPI document (Swagger UI, SDK docs, mock servers).

Written as the Structs themselves, so an example can never drift from its schema: the test of
the document decodes each one back into its type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec

from sora2.adapters.http import schemas as s

USER_ID = UUID("7d6f1e2a-3b4c-4d5e-8f90-a1b2c3d4e5f6")
VIDEO_ID = UUID("0b9e7c5a-1d2f-4e3a-9b8c-7d6e5f4a3b2c")
ORDER_ID = UUID("5f4e3d2c-1b0a-4987-b6c5-d4e3f2a1b0c9")
CREDIT_ID = UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI3ZDZmMWUyYSJ9.c2lnbmF0dXJl"

USER = s.User(USER_ID, "user@example.com", "johndoe", s.Role.USER, AT, AT)
VIDEO = s.Video(
    VIDEO_ID,
    USER_ID,
    "A red fox running through fresh snow at dawn",
    s.VideoState.COMPLETED,
    100,
    5,
    s.AspectRatio.LANDSCAPE_16_9,
    AT,
    AT,
    video_url=f"https://api.example.com/api/videos/{VIDEO_ID}/download",
    thumbnail_url=f"https://api.example.com/api/videos/{VIDEO_ID}/thumbnail",
)
ORDER = s.Order(ORDER_ID, USER_ID, 10.0, 100, s.OrderStatus.PAID, s.PaymentMethod.ALIPAY, AT, AT)
CREDIT = s.Credit(CREDIT_ID, USER_ID, -50, 150, s.CreditType.CONSUME, "Video generation", AT)
VIDEO_STATUS = s.VideoStatus(VIDEO_ID, s.VideoState.PROCESSING, 40, 12)

EXAMPLES: list[msgspec.Struct] = [
    s.RegisterRequest("user@example.com", "password123", "johndoe"),
    s.LoginRequest("user@example.com", "password123"),
    s.ForgotPasswordRequest("user@example.com"),
    s.ResetPasswordRequest("the-token-from-the-email", "new-password-123"),
    USER,
    s.AuthResponse(USER, TOKEN),
    s.AccessTokenResponse(TOKEN),
    s.Message("Done"),
    s.UpdateProfileRequest(username="janedoe"),
    s.ChangePasswordRequest("password123", "new-password-123"),
    s.PasswordChanged("Password changed", TOKEN),
    s.Balance(150),
    CREDIT,
    s.CreditPage([CREDIT], 1, 1, 20, 1),
    s.OrderRequest(100, s.PaymentMethod.ALIPAY),
    ORDER,
    s.OrderPage([ORDER], 1, 1, 20, 1),
    s.Payment(ORDER, s.PaymentProvider.SANDBOX, True),
    s.GenerateRequest(
        "A red fox running through fresh snow at dawn",
        s.Duration.SECONDS_5,
        s.AspectRatio.LANDSCAPE_16_9,
    ),
    VIDEO,
    s.VideoPage([VIDEO], 1, 1, 20, 1),
    VIDEO_STATUS,
    s.Share("https://api.example.com/api/share/Yk3v9QyZ", "Yk3v9QyZ"),
    s.Health("ready", [s.ProcessorStatus("read-models", 1042)]),
]

STREAM_EXAMPLE = "".join(
    f"event: status\ndata: {msgspec.json.encode(status).decode()}\n\n"
    for status in (
        VIDEO_STATUS,
        s.VideoStatus(VIDEO_ID, s.VideoState.COMPLETED, 100, 0),
    )
)
"""A `text/event-stream` as a status stream sends it."""


def by_component() -> dict[str, object]:
    """Each example as JSON, by its type's name (its component's name in the document)."""
    return {type(e).__name__: msgspec.to_builtins(e) for e in EXAMPLES}
