"""One log format for every process and library: JSON lines in production, readable text in
development (`LOG_FORMAT` chooses otherwise).

structlog renders the standard library's records (ours, uvicorn's, psycopg's …), so every
line carries the same fields: `timestamp`, `level`, `logger`, `event`, the `request_id` of the
request it belongs to (bound by the HTTP layer), and whatever a call adds with `extra=`.
Before a line is written, anything that looks like a credential is masked: bearer tokens,
JWTs, share-link tokens and signed-URL query values, wherever they appear in it.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

# the values a log line must never show, and what shows instead
MASK = "[redacted]"
_MASKS = [
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), MASK),  # a JWT (access, refresh, reset)
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), rf"\g<1>{MASK}"),
    (re.compile(r"(/share/)[^/\s?#\"']+"), rf"\g<1>{MASK}"),  # a share link's token
    (
        re.compile(
            r"(?i)([?&;](?:[\w.-]*(?:token|signature|sig|secret|password|key|code|auth)"
            r"[\w.-]*)=)[^&\s#\"']*"
        ),
        rf"\g<1>{MASK}",
    ),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), rf"\g<1>{MASK}@"),  # a password in a URL
]


# Each pattern above needs one of these (lower-cased) in the text: most values of a line (a
# level, a timestamp, a plain path) have none and skip the patterns, which cost more than
# the rest of the line's formatting together.
_HINTS = ("eyj", "bearer", "/share/", "=", "://")


def masked(text: str) -> str:
    """`text` with every credential-looking part replaced by `[redacted]`."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


# the id of the request a line is written for (set by the HTTP layer, `request_log.py`):
# copied into the handler's thread with the rest of the request's context
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# what a record carries that is not an `extra=` of the call
_RECORD_KEYS = frozenset(logging.LogRecord("name", 0, "pathname", 0, "msg", (), None).__dict__)


def _mask_credentials(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = masked(value)
    return event


def _rename_event(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """JSON lines name the message `message`, as log collectors expect."""
    event["message"] = event.pop("event", "")
    return event


def _add_request_id(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    request_id = REQUEST_ID.get()
    return event if request_id is None else {"request_id": request_id, **event}


FIRST = ("timestamp", "level", "logger", "event")


def _readable(logger: WrappedLogger, name: str, event: EventDict) -> str:
    """`timestamp level logger message key=value …`, traceback below: the development format
    (structlog's ConsoleRenderer reads the same but costs a request's worth of time a line)."""
    exception = event.pop("exception", None)
    head = " ".join(str(event.pop(key, "")) for key in FIRST)
    rest = " ".join(f"{key}={value}" for key, value in event.items())
    line = f"{head} {rest}" if rest else head
    return f"{line}\n{exception}" if exception else line


class LineFormatter(logging.Formatter):
    """A plain record (no traceback) in one pass: the same line, field for field, as the
    structlog chain below writes, which cost ~9% of a command's time on the API's thread.
    Records with a traceback or a stack, and structlog's own, take the chain."""

    def __init__(self, json: bool, chain: logging.Formatter) -> None:
        super().__init__()
        self.json = json
        self.chain = chain

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.stack_info or not isinstance(record.msg, str):
            return self.chain.format(record)
        event: dict[str, Any] = {}
        request_id = REQUEST_ID.get()
        if request_id is not None:
            event["request_id"] = request_id
        event["event"] = record.getMessage()
        event["level"] = record.levelname.lower()
        event["logger"] = record.name
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS:
                event[key] = value
        event.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
        event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = masked(value)
        if not self.json:
            return _readable(None, "", event)
        event["message"] = event.pop("event")
        return jsonlib.dumps(event, ensure_ascii=False, default=repr)


def configure_logging(json: bool, level: str = "info") -> None:
    """Route every logger through one structlog formatter on stderr (call once per process,
    again to change the format)."""
    shared: list[Any] = [
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        final: list[Any] = [
            structlog.processors.format_exc_info,
            _mask_credentials,
            _rename_event,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        final = [
            structlog.processors.format_exc_info,
            _mask_credentials,
            _readable,
        ]
    chain = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter(json, chain))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        library = logging.getLogger(name)
        library.handlers.clear()  # uvicorn's own config, if it ran, would print twice
        library.propagate = True
    # uvicorn writes its access line whenever that logger reaches a handler (its own test),
    # with the client's address: RequestLog's masked line is the only one
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
