"""The one-pass log line (LineFormatter) writes what structlog's chain writes, field for
field, in both formats; a line with a traceback still gets it."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from sora2.adapters import logs

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def records() -> list[logging.LogRecord]:
    access = logging.LogRecord(
        "sora2.access", logging.INFO, "x.py", 1, "%s %s %s", ("GET", "/api/x?token=abc", 200), None
    )
    access.__dict__.update(method="GET", path="/api/x", status=200, duration_ms=1.5)
    library = logging.LogRecord(
        "uvicorn.error", logging.WARNING, "x.py", 1, f"sent Bearer {JWT}", (), None
    )
    library.color_message = "\x1b[31msent\x1b[0m"
    unicode = logging.LogRecord("sora2", logging.ERROR, "x.py", 1, "提示 %d", (3,), None)
    return [access, library, unicode]


@pytest.fixture(params=[True, False], ids=["json", "readable"])
def formatter(request: pytest.FixtureRequest) -> logs.LineFormatter:
    logs.configure_logging(json=request.param)
    formatter = logging.getLogger().handlers[0].formatter
    assert isinstance(formatter, logs.LineFormatter)
    yield formatter
    logs.configure_logging(json=False)


@pytest.mark.parametrize("request_id", [None, "req-42"])
def test_a_plain_line_is_the_chains_line(formatter: logs.LineFormatter, request_id: str) -> None:
    bound = logs.REQUEST_ID.set(request_id)
    try:
        for record in records():
            fast = formatter.format(logging.makeLogRecord(record.__dict__))
            chained = formatter.chain.format(logging.makeLogRecord(record.__dict__))
            assert TIMESTAMP.search(fast)
            assert TIMESTAMP.sub("T", fast) == TIMESTAMP.sub("T", chained)
            assert JWT not in fast and "abc" not in fast
            assert ("req-42" in fast) == (request_id is not None)
            if formatter.json:
                assert json.loads(fast)["message"]
    finally:
        logs.REQUEST_ID.reset(bound)


def test_a_line_with_a_traceback_carries_it(formatter: logs.LineFormatter) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "sora2", logging.ERROR, "x.py", 1, "failed", (), exc_info=sys.exc_info()
        )
    line = formatter.format(record)
    assert "ValueError: boom" in line
    assert "failed" in line
