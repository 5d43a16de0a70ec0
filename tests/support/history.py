"""A history of many users, made fast through the services (no HTTP): for rebuild tests
and benchmarks that need a log of tens of thousands of events."""

from __future__ import annotations

from sora2.bootstrap import Sora2


def make_history(sora2: Sora2, users: int, videos_per_user: int = 3) -> int:
    """Register users who each buy credits, request videos and cancel every other one;
    the log position afterwards."""
    for i in range(users):
        grant = sora2.accounts.register(f"hist{i}@example.com", f"hist{i}", "password123")
        user_id = grant.user.id
        order = sora2.orders.create(user_id, 100, "STRIPE")
        sora2.orders.confirm_payment(order.id, f"ref-{i}")
        for v in range(videos_per_user):
            video = sora2.videos.request(user_id, f"clip {v}", 5, "16:9")
            if v % 2:
                sora2.videos.cancel(user_id, video.id)
    return sora2.log.position
