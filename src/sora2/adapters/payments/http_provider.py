"""What every payment provider's adapter shares: its HTTP client (its own, or one a test
hands in) and how it waits between retries of a call the provider may not have received."""

from __future__ import annotations

import time

import httpx


class HttpProvider:
    def __init__(
        self, client: httpx.Client | None, max_retries: int, retry_backoff: float, timeout: float
    ) -> None:
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._timeout = timeout

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.retry_backoff * (2**attempt))


def credits_label(credits: int) -> str:
    """What the buyer sees on the provider's page for an order of `credits`."""
    return f"{credits} Sora2 credit{'' if credits == 1 else 's'}"
