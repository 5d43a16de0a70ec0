"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency

from sora2.adapters.http import schemas
from sora2.adapters.http.errors import documented, error_body
from sora2.bootstrap import Sora2


class HealthController(Controller):
    path = ""
    tags = ["Health"]

    @get("/health", summary="Liveness: the process answers")
    async def health(self) -> schemas.Health:
        return schemas.Health("ok")

    @get(
        "/ready",
        sync_to_thread=True,
        responses=documented(503),
        summary="Readiness: the database answers; how far each follower of the log got",
    )
    def ready(self, sora2: NamedDependency[Sora2]) -> Response[Any]:
        try:
            lanes = sora2.ready()
        except Exception:
            return Response(error_body(503, "the database is not reachable"), status_code=503)
        processors = [
            schemas.ProcessorStatus(
                lane.name,
                lane.position,
                schemas.ProcessorStuck(
                    lane.stuck.position, lane.stuck.topic.rsplit(".", 1)[-1], lane.stuck.error
                )
                if lane.stuck
                else None,
            )
            for lane in lanes
        ]
        # a stuck processor degrades what it serves, not the API: stay in the pool, say so
        status = "degraded" if any(p.stuck for p in processors) else "ready"
        sweeps = sora2.jobs.sweeps if sora2.jobs.sweeping else None
        return Response(schemas.Health(status, processors, sweeps))
