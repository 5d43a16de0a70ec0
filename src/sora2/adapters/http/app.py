"""The Litestar application: routes, auth dependency, errors, CORS, OpenAPI, rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar, MediaType, Request, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide

from sora2.adapters.http.auth import current_user
from sora2.adapters.http.controllers.admin import AdminController
from sora2.adapters.http.controllers.auth import AuthController
from sora2.adapters.http.controllers.credits import CreditsController
from sora2.adapters.http.controllers.health import HealthController
from sora2.adapters.http.controllers.orders import OrdersController
from sora2.adapters.http.controllers.payment_notifies import PaymentNotifiesController
from sora2.adapters.http.controllers.payments import PaymentsController
from sora2.adapters.http.controllers.public import PublicController
from sora2.adapters.http.controllers.users import UsersController
from sora2.adapters.http.controllers.videos import VideosController
from sora2.adapters.http.draining import StreamDrain, drain_on_stop_signals
from sora2.adapters.http.errors import error_response
from sora2.adapters.http.handler_thread import check_access_in_handler_threads
from sora2.adapters.http.headers import json_error_headers, security_headers
from sora2.adapters.http.idempotency import IdempotencyMiddleware
from sora2.adapters.http.json_limits import JsonDepthMiddleware
from sora2.adapters.http.openapi import document, openapi_config, swagger_assets
from sora2.adapters.http.rate_limit import RateLimitMiddleware
from sora2.adapters.http.request_log import RequestLog
from sora2.adapters.http.strict_bodies import check_body
from sora2.bootstrap import Sora2


@asynccontextmanager
async def background_work(sora2: Sora2, app: Litestar, close: bool) -> AsyncIterator[None]:
    """While the app serves, the container follows the log and (VIDEO_JOBS=inline) renders.
    `close`: the container ends with the app (a process of `serve --workers N`)."""
    handlers = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="handler")
    asyncio.get_running_loop().set_default_executor(handlers)
    await anyio.to_thread.run_sync(sora2.start)
    drain_on_stop_signals(app.state.drain_streams)
    try:
        yield
    finally:
        handlers.shutdown(wait=False)  # its idle threads end with the app
        if close:
            await anyio.to_thread.run_sync(sora2.close)


@get("/api-docs.json", include_in_schema=False, media_type=MediaType.JSON)
async def openapi_json(request: Request) -> dict[str, Any]:
    return document(request.app)


def request_scope(sora2: Sora2) -> Any:
    """Each request in a consistency scope of its own: it reads the log's head once."""

    def wrap(app: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            with sora2.seen.request():
                await app(scope, receive, send)

        return middleware

    return wrap


# Handlers block on the database; the loop's default executor has cpu+4 threads, too few to
# keep a queue of saves (each waits for the event table's lock) and reads in flight at once.
HANDLER_THREADS = 64


def create_app(
    sora2: Sora2, controllers: list[Any] | None = None, close_with_app: bool = False
) -> Litestar:
    settings = sora2.settings

    handlers: list[Any] = [
        HealthController,
        AuthController,
        UsersController,
        CreditsController,
        OrdersController,
        VideosController,
        PublicController,
        PaymentsController,
        PaymentNotifiesController,
        AdminController,
        *(controllers or []),
        openapi_json,
        swagger_assets(),
    ]
    app = Litestar(
        route_handlers=handlers,
        dependencies={
            "sora2": Provide(lambda: sora2, use_cache=True, sync_to_thread=False),
            "user": Provide(current_user, sync_to_thread=False),
        },
        exception_handlers={Exception: error_response},
        state=State({"sora2": sora2}),  # for guards, which run before dependencies
        before_request=check_body,
        lifespan=[lambda app: background_work(sora2, app, close_with_app)],
        cors_config=CORSConfig(
            allow_origins=[settings.frontend_url],
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            # Last-Event-ID: an EventSource of the front end resuming a stream
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=[
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
                "Content-Disposition",
                "X-Request-ID",
                "Idempotent-Replayed",
            ],
        ),
        middleware=[
            *([request_scope(sora2)] if sora2.seen.follows_head else []),
            *([RateLimitMiddleware(sora2)] if settings.rate_limit_enabled else []),
            JsonDepthMiddleware(),
            IdempotencyMiddleware(sora2),
        ],
        before_send=[security_headers(settings.production)],
        openapi_config=openapi_config(),
        request_max_body_size=1024 * 1024,
        debug=False,
        logging_config=None,  # the process set up logging (sora2.adapters.logs)
    )
    check_access_in_handler_threads(app)  # once every handler is registered
    # outside routing, errors and CORS, so every answer (a router's 404 too) has its id and
    # its log line; `sora2 serve` calls `app.state.drain_streams()` when told to stop
    drain = StreamDrain(app.asgi_handler)
    app.asgi_handler = RequestLog(drain)
    app.state.drain_streams = drain.drain
    app.state.refusal_headers = json_error_headers(settings.production)  # for protocol.py
    return app
