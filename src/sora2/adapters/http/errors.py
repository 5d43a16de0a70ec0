"""One error body for every failure: `{error, message, statusCode}`; never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus

from eventsourcing.persistence import InterfaceError, OperationalError
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from sora2.adapters.http.schemas import PATTERN_PROBLEMS, ErrorBody, FieldProblem
from sora2.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InsufficientCredits,
    NotAuthenticated,
    NotFound,
    PromptBlocked,
    TooLarge,
    TooManyAttempts,
    Unavailable,
    UnsupportedMedia,
)

log = logging.getLogger("sora2.http")

STATUS = {
    NotFound: 404,
    Conflict: 409,
    InsufficientCredits: 402,
    NotAuthenticated: 401,
    Forbidden: 403,
    TooLarge: 413,
    TooManyAttempts: 429,
    UnsupportedMedia: 415,
    Unavailable: 503,
}
NAMES = {400: "Validation Error", 401: "Unauthorized", 402: "Payment Required"}
# Refusals clients must tell apart from others of the same status.
ERROR_NAMES = {PromptBlocked: "Moderation"}


def error_body(
    status: int,
    message: str,
    name: str | None = None,
    details: list[FieldProblem] | None = None,
) -> ErrorBody:
    error = name or NAMES.get(status) or HTTPStatus(status).phrase
    return ErrorBody(error, message, status, details)


def error_response(request: Request, exc: Exception) -> Response[ErrorBody]:
    headers: dict[str, str] = {}
    name = None
    details: list[FieldProblem] | None = None
    if isinstance(exc, DomainError):
        status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)
        message = str(exc)
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after)}
        name = ERROR_NAMES.get(type(exc))
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, exc.detail
        headers = dict(exc.headers or {})
        if isinstance(exc.extra, list) and exc.extra:  # name each invalid field
            problems = [_field_problem(e) for e in exc.extra]
            message = "; ".join(
                p.field and f"{p.field}: {p.message}" or p.message for p in problems
            )
            details = [p for p in problems if p.field] or None
        elif status == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
    elif isinstance(exc, OperationalError | InterfaceError):  # the database is away
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        status, message = 503, "The database is not reachable; try again in a moment."
        headers = {"Retry-After": "1"}
    else:  # the trace goes to the log only
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, message = 500, "Something went wrong on our side."
    if status >= 500 and isinstance(exc, HTTPException):  # the framework's own failure
        log.error("%s on %s %s: %r", status, request.method, request.url.path, exc, exc_info=exc)
        message = "Something went wrong on our side."
    if status >= 500:
        details = None
    return Response(error_body(status, message, name, details), status_code=status, headers=headers)


def _field_problem(problem: object) -> FieldProblem:
    if isinstance(problem, dict):
        key, text = problem.get("key") or "", str(problem.get("message", "is invalid"))
        return FieldProblem(str(key), PATTERN_MESSAGES.get(text, text))
    return FieldProblem("", str(problem))


# msgspec names the regex a string broke; say what it means instead
PATTERN_MESSAGES = {
    f"Expected `str` matching regex {pattern!r}": meaning
    for pattern, meaning in PATTERN_PROBLEMS.items()
}


DESCRIPTIONS = {
    400: "Invalid input: a missing, mistyped or out-of-range field",
    401: "Missing, invalid, expired or revoked credentials",
    402: "Not enough credits",
    403: "Not allowed",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    413: "Upload too large",
    415: "Unsupported file type",
    429: "Too many requests; see Retry-After",
    503: "A backing service (database, payment provider) is not available",
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer with.

    A route with path, query or cookie parameters must list 400 too: otherwise Litestar
    documents its own 400 body, which this API never sends. Examples are written out, as
    generated ones are random words with a random statusCode.
    """
    return {
        s: ResponseSpec(
            data_container=ErrorBody,
            description=DESCRIPTIONS[s],
            generate_examples=False,
            examples=[Example(summary=DESCRIPTIONS[s], value=_example(s))],
        )
        for s in statuses
    }


def _example(status: int) -> dict[str, object]:
    body = error_body(status, DESCRIPTIONS[status])
    return {"error": body.error, "message": body.message, "statusCode": body.status_code}
