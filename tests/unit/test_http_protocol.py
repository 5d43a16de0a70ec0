"""The HTTP protocol writes a whole response with one `transport.write` (one syscall), and a
streamed chunk as soon as the loop's turn ends, not when the next chunk comes."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from sora2.adapters.http.protocol import HttpProtocol


class Transport(asyncio.Transport):
    """Records each write, as the socket would see it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 3001), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class App:
    """/stream: three chunks, each after the test says; anything else: one JSON body."""

    def __init__(self) -> None:
        self.next_chunk: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for n in range(3):
                chunk = {"type": "http.response.body", "body": b"chunk%d" % n, "more_body": True}
                await send(chunk)
                await self.next_chunk.get()
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


def connection(app: App) -> tuple[HttpProtocol, Transport]:
    config = uvicorn.Config(app, http=HttpProtocol, lifespan="off", log_level="warning")
    protocol = HttpProtocol(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def turns(until: Any, limit: int = 100) -> None:
    for _ in range(limit):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("not within the loop's turns")


def test_a_response_is_one_write_and_keep_alive_answers_each_in_turn() -> None:
    async def scenario() -> None:
        protocol, transport = connection(App())
        protocol.data_received(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        await turns(lambda: len(transport.writes) == 2)
        for write in transport.writes:  # the status line, the headers and the body at once
            assert write.startswith(b"HTTP/1.1 200 OK\r\n"), write
            assert write.endswith(b'\r\n\r\n{"status":"ok"}'), write
        await asyncio.sleep(0.01)
        assert len(transport.writes) == 2 and not transport.closed

    asyncio.run(scenario())


def test_a_streamed_chunk_is_written_before_the_next_one_is_made() -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport = connection(app)
        protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        await turns(lambda: b"chunk0" in b"".join(transport.writes))
        assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
        for n in (1, 2):
            app.next_chunk.put_nowait(None)
            await turns(lambda n=n: b"chunk%d" % n in transport.writes[-1])
        app.next_chunk.put_nowait(None)
        await turns(lambda: transport.writes[-1] == b"0\r\n\r\n")

    asyncio.run(scenario())
