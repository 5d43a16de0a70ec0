"""A signed-in request crosses to a thread once: the session check runs in the handler's
own thread, just before the handler, and still refuses an ended session."""

from __future__ import annotations

import threading
from typing import Any

from tests.conftest import Api
from tests.support.errors import assert_error


def recording(threads: list[tuple[str, int]], name: str, fn: Any) -> Any:
    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append((name, threading.get_ident()))
        return fn(*args, **kwargs)

    return recorded


def test_the_check_and_the_handler_share_one_thread(sqlite_api: Api) -> None:
    api = sqlite_api
    _, token = api.register("alice")
    threads: list[tuple[str, int]] = []
    sora2 = api.sora2
    sora2.accounts.authenticate = recording(threads, "check", sora2.accounts.authenticate)
    sora2.credits.balance = recording(threads, "handler", sora2.credits.balance)
    loop_threads = set()
    with api.client(token) as c:
        for _ in range(5):
            r = c.get("/api/credits/balance")
            assert r.status_code == 200, r.text
    assert [name for name, _ in threads] == ["check", "handler"] * 5
    for i in range(0, len(threads), 2):
        assert threads[i][1] == threads[i + 1][1]
        loop_threads.add(threads[i][1])
    assert threading.main_thread().ident not in loop_threads


def test_an_ended_session_is_refused_before_the_handler_runs(sqlite_api: Api) -> None:
    api = sqlite_api
    _, token = api.register("bob")
    with api.client(token) as c:
        assert c.post("/api/auth/logout").status_code in (200, 204)
        ran: list[tuple[str, int]] = []
        api.sora2.videos.request = recording(ran, "handler", api.sora2.videos.request)
        assert_error(c.post("/api/videos/generate", json={"prompt": "a lighthouse"}), 401)
        assert_error(c.get("/api/credits/balance"), 401)
    assert ran == []


def test_an_async_handler_gets_the_check_too(sqlite_api: Api) -> None:
    api = sqlite_api
    _, token = api.register("carol")
    with api.client(token) as c:
        assert c.post("/api/auth/logout").status_code in (200, 204)
        r = c.get("/api/videos/00000000-0000-0000-0000-000000000001/events")
    assert_error(r, 401)
