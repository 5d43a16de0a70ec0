"""Fixed-window counters in Redis, shared by every API process."""

from __future__ import annotations

import time

from redis.asyncio import Redis

# INCR and set the expiry on the first hit, atomically; answer the count and the ms left
HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class RedisRateLimitStore:
    def __init__(self, host: str, port: int, prefix: str = "sora2:rl:") -> None:
        self.redis = Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix
        self._hit = self.redis.register_script(HIT)

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        count, ttl_ms = await self._hit(keys=[self.prefix + key], args=[window_seconds * 1000])
        return int(count), time.time() + int(ttl_ms) / 1000

    async def close(self) -> None:
        await self.redis.aclose()
