"""One thread hand-off per signed-in request: the access check runs in the handler's thread.

Litestar runs each synchronous dependency in a worker thread of its own and then the
handler in another: two hand-offs (submit, wake, result back to the loop) for every
signed-in request, a third of the event loop's time on a paying command. Here the `user`
dependency only reads the token's claims on the loop (a bad or missing token is a 401
before anything else) and hands the handler a `SignIn`; the handler's own thread runs the
access check (`Accounts.authenticate`, one row) just before the handler, so a signed-in
request crosses to a thread once. An async handler gets the check in a thread first.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from litestar import Litestar
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from litestar.routes import HTTPRoute
from litestar.utils.sync import AsyncCallable

from sora2.adapters.security.tokens import AccessClaims
from sora2.application.projections.rows import UserRow

USER = "user"  # the dependency's name in handlers' signatures

# how a handler asks for the signed-in user: the value arrives as a `SignIn`, resolved
# into the UserRow before the handler's body runs (so Litestar must not validate it)
SignedIn = NamedDependency[SkipValidation[UserRow]]


class SignIn:
    """A request's access check, still to run."""

    __slots__ = ("_accounts", "_claims")

    def __init__(self, accounts: Any, claims: AccessClaims) -> None:
        self._accounts, self._claims = accounts, claims

    def user(self) -> UserRow:
        claims = self._claims
        return self._accounts.authenticate(claims.user_id, claims.session_id, claims.epoch)


def _signed_in(kwargs: dict[str, Any]) -> dict[str, Any]:
    sign_in = kwargs.get(USER)
    if isinstance(sign_in, SignIn):
        kwargs[USER] = sign_in.user()
    return kwargs


def _in_thread(fn: Any) -> Any:
    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **_signed_in(kwargs))

    return handler


def _before_async(fn: Any) -> Any:
    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> Any:
        if isinstance(sign_in := kwargs.get(USER), SignIn):
            kwargs[USER] = await sync_to_thread(sign_in.user)
        return await fn(*args, **kwargs)

    return handler


def check_access_in_handler_threads(app: Litestar) -> None:
    """Wrap every registered handler that asks for `user` (call once the app is built:
    Litestar has then wrapped each synchronous handler for its thread)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            wrapped = handler.fn
            inner = wrapped.func if isinstance(wrapped, AsyncCallable) else wrapped
            if USER not in inspect.signature(inner).parameters:
                continue
            if isinstance(wrapped, AsyncCallable):
                handler._fn = AsyncCallable(_in_thread(inner))  # noqa: SLF001
            elif handler.has_sync_callable:
                raise TypeError(f"{handler}: a signed-in handler must run in a thread or be async")
            else:
                handler._fn = _before_async(wrapped)  # noqa: SLF001
