"""Fixed-window counters in this process's memory (the embedded default)."""

from __future__ import annotations

import asyncio
import time


class MemoryRateLimitStore:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._lock = asyncio.Lock()

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        """Count one request; (requests so far in this window, when the window resets)."""
        now = time.time()
        async with self._lock:
            count, reset = self._windows.get(key, (0, 0.0))
            if now >= reset:  # not rounded up: Retry-After must never exceed the window
                count, reset = 0, now + window_seconds
            count += 1
            self._windows[key] = (count, reset)
            if len(self._windows) > 100_000:  # forget finished windows
                self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
            return count, reset
