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
        summary="Readiness: the database answers",
    )
    def ready(self, sora2: NamedDependency[Sora2]) -> Response[Any]:
        try:
            sora2.ready()
        except Exception:
            return Response(error_body(503, "the database is not reachable"), status_code=503)
        return Response(schemas.Health("ready"))
