"""Open event streams end when the server begins to shut down.

uvicorn waits for every open response before it stops, and an SSE stream never ends by
itself: without this a SIGTERM waits out the whole grace period (then cancels the stream
mid-message). `drain()` makes each open `text/event-stream` response see its client leave,
as Litestar listens for that; the stream then ends cleanly with its last complete event,
and an EventSource client reconnects (to another process, or to this one restarted) after
`retry` and resumes from `Last-Event-ID`. Requests that are not streams finish as usual.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import Any

STREAM_TYPE = b"text/event-stream"


class StreamDrain:
    """ASGI: wraps the app's handler; `drain()` may be called from a signal handler."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Event | None = None

    def drain(self) -> None:
        self.draining = True
        if self._loop is not None and self._drained is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._drained.set)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._drained is None:
            self._loop, self._drained = asyncio.get_running_loop(), asyncio.Event()
            if self.draining:
                self._drained.set()
        drained = self._drained
        streaming = finished = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal streaming, finished
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                streaming = content_type.startswith(STREAM_TYPE)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        async def receive_or_drain() -> dict[str, Any]:
            if not streaming:
                return await receive()
            receiving = asyncio.ensure_future(receive())
            waiting = asyncio.ensure_future(drained.wait())
            try:
                await asyncio.wait({receiving, waiting}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # the stream ended first: stop listening
                receiving.cancel()
                raise
            finally:
                waiting.cancel()
            if receiving.done():
                return receiving.result()
            receiving.cancel()
            return {"type": "http.disconnect"}

        await self.app(scope, receive_or_drain, tracking_send)
        if streaming and not finished and drained.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def drain_on_stop_signals(drain: Callable[[], None]) -> None:
    """Call `drain` first when SIGTERM or SIGINT arrives, then whatever handled it before.

    Called while the app starts, when uvicorn already owns the signals (in `sora2 serve`'s
    process and in each `--workers` process alike); uvicorn puts its own predecessors back
    when it is done. Off the main thread (an app served by a test in a thread) there is no
    signal to hook.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def first_drain(sig: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
            drain()
            previous(sig, frame)

        signal.signal(signum, first_drain)
