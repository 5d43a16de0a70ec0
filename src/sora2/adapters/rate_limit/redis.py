"""Fixed-window counters in Redis, shared by every API process.

A Redis outage must not fail the requests it counts: while Redis does not answer (within
`timeout`), the counters live in this process's memory, so every limit still holds per
process; one warning says so (not one per request), Redis is tried again every
`retry_seconds`, and once it answers the counters are shared again. `/ready` reports the
outage (`ping`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from sora2.adapters.rate_limit.memory import MemoryRateLimitStore

log = logging.getLogger("sora2.rate_limit")

# INCR and set the expiry on the first hit, atomically; answer the count and the ms left
HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""
UNAVAILABLE = (RedisError, OSError, asyncio.TimeoutError)


class RedisRateLimitStore:
    def __init__(
        self,
        host: str,
        port: int,
        prefix: str = "sora2:rl:",
        timeout: float = 0.5,
        retry_seconds: float = 5.0,
    ) -> None:
        self.redis = Redis(
            host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.address = f"{host}:{port}"
        self.prefix = prefix
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.fallback = MemoryRateLimitStore()
        self._hit = self.redis.register_script(HIT)
        self._next_try: float | None = None  # while Redis is away: when to try it again

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        if self._next_try is not None and time.monotonic() < self._next_try:
            return await self.fallback.hit(key, window_seconds)
        try:
            count, ttl_ms = await asyncio.wait_for(
                self._hit(keys=[self.prefix + key], args=[window_seconds * 1000]),
                timeout=self.timeout * 2,
            )
        except UNAVAILABLE as error:
            self._went_away(error)
            return await self.fallback.hit(key, window_seconds)
        if self._next_try is not None:
            self._next_try = None
            log.info("Redis at %s answers again: rate limits are shared again", self.address)
        return int(count), time.time() + int(ttl_ms) / 1000

    async def ping(self) -> None:
        """Raise unless Redis answers within the timeout (readiness)."""
        await asyncio.wait_for(self.redis.ping(), timeout=self.timeout * 2)

    def _went_away(self, error: BaseException) -> None:
        if self._next_try is None:
            log.warning(
                "Redis at %s does not answer (%s): rate limits are counted in this process "
                "until it does (retried every %.0fs)",
                self.address,
                type(error).__name__,
                self.retry_seconds,
            )
        self._next_try = time.monotonic() + self.retry_seconds

    async def close(self) -> None:
        await self.redis.aclose()
