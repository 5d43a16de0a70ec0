"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from sora2.adapters.http import schemas
from sora2.adapters.readiness import CHECK_TIMEOUT, OK, check_dependencies
from sora2.bootstrap import Sora2

NOT_READY_EXAMPLE = {
    "error": "Service Unavailable",
    "message": "not ready: redis (ConnectionError: Connection refused)",
    "statusCode": 503,
    "checks": {"database": "ok", "redis": "ConnectionError: Connection refused", "storage": "ok"},
}


class HealthController(Controller):
    path = ""
    tags = ["Health"]

    @get("/health", summary="Liveness: the process answers")
    async def get_health(self) -> schemas.Health:
        return schemas.Health("ok")

    @get(
        "/ready",
        responses={
            503: ResponseSpec(
                data_container=schemas.NotReady,
                description="A configured dependency (database, redis, nats, storage, "
                "processors) does not answer; `checks` says which and why",
                generate_examples=False,
                examples=[Example(summary="Redis is down", value=NOT_READY_EXAMPLE)],
            )
        },
        summary="Readiness: every configured dependency answers; how far each follower of "
        f"the log got (answers within about {CHECK_TIMEOUT:g} s)",
    )
    async def get_readiness(self, sora2: NamedDependency[Sora2]) -> Response[Any]:
        checks = await check_dependencies(sora2)
        failed = {name: why for name, why in checks.items() if why != OK}
        if failed:
            message = "not ready: " + "; ".join(f"{name} ({why})" for name, why in failed.items())
            body = schemas.NotReady("Service Unavailable", message, 503, checks)
            return Response(body, status_code=503)
        lanes = await anyio.to_thread.run_sync(sora2.runner.status)
        processors = [
            schemas.ProcessorStatus(
                lane.name,
                lane.position,
                schemas.ProcessorStuck(
                    lane.stuck.position, lane.stuck.topic.rsplit(".", 1)[-1], lane.stuck.error
                )
                if lane.stuck
                else None,
                lane.leading,
            )
            for lane in lanes
        ]
        # a processor stuck at an event degrades what it serves, not the API: stay in the
        # pool, say so
        status = "degraded" if any(p.stuck for p in processors) else "ready"
        sweeps = sora2.jobs.sweeps if sora2.jobs.sweeping else None
        return Response(schemas.Health(status, processors, sweeps, checks))
