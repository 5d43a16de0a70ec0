"""Readiness: does every dependency this process was configured with answer?

Each check has its own bound (`CHECK_TIMEOUT`) and they run at once, so `/ready` answers
within about that long even when a dependency hangs (a blocking check left behind in its
thread finishes there on its own). Only what is configured is checked: the database always,
Redis when REDIS_HOST is set, NATS when NATS_URL is set, storage (the folder, or the S3
endpoint), and the processors (each lane of the log still running).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2

CHECK_TIMEOUT = 1.5  # seconds for each check
OK = "ok"


async def check_dependencies(sora2: Sora2) -> dict[str, str]:
    """{dependency: "ok", or what is wrong with it}."""
    checks: dict[str, Callable[[], Any]] = {"database": sora2.ping_database}
    if hasattr(sora2.rate_limits, "ping"):
        checks["redis"] = sora2.rate_limits.ping
    if (relay := sora2.extras.get("nats_relay")) is not None:
        checks["nats"] = partial(relay.ping, CHECK_TIMEOUT)
    if hasattr(sora2.storage, "ping"):
        checks["storage"] = sora2.storage.ping
    checks["processors"] = lambda: _lanes_running(sora2)
    names = list(checks)
    answers = await asyncio.gather(*(_bounded(checks[name]) for name in names))
    return dict(zip(names, answers, strict=True))


async def _bounded(check: Callable[[], Any]) -> str:
    try:
        if inspect.iscoroutinefunction(check):
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        else:  # a blocking call: in a thread, which we stop waiting for
            await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    except Exception as error:
        return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}".rstrip(": ")
    return OK


def _lanes_running(sora2: Sora2) -> None:
    stopped = [lane.name for lane in sora2.runner.lanes.values() if not lane.running]
    if stopped and sora2.runner.started:
        raise RuntimeError(f"not running: {', '.join(stopped)}")
