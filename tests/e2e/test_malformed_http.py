"""What the HTTP parser refuses, `sora2 serve` answers in the API's error shape: a control
character in a header, a malformed request line, a head over 16 KiB. Bytes go over a raw
socket (httpx refuses to send them); well-formed requests on one connection, one after the
other or pipelined, are all answered, in order."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support.server_process import ServerProcess, production_env, running_server

SECURITY = ("cache-control", "x-content-type-options", "referrer-policy", "x-frame-options")
SECURITY += ("content-security-policy", "strict-transport-security")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("malformed")
    with running_server(folder, production_env(folder)) as process:
        yield process


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def error(self) -> dict[str, object]:
        assert self.headers["content-type"].startswith("application/json"), self.headers
        error = json.loads(self.body)
        assert set(error) == {"error", "message", "statusCode"}, error
        assert error["statusCode"] == self.status, error
        return error


def connect(server: ServerProcess) -> socket.socket:
    url = urlparse(server.base)
    return socket.create_connection((url.hostname, url.port), timeout=30)


def read_answer(reader) -> Answer:  # noqa: ANN001 - a socket's binary file
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        assert name.lower() not in headers, f"{name} twice"
        headers[name.lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


def exchange(server: ServerProcess, request: bytes) -> tuple[Answer, bytes]:
    """Send `request`, read one answer and whatever follows it until the server closes."""
    with connect(server) as sock, sock.makefile("rb") as reader:
        sock.sendall(request)
        answer = read_answer(reader)
        return answer, reader.read()


def get(path: str, *extra: bytes, close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: sora2", *extra]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def assert_refused(answer: Answer, rest: bytes, status: int) -> dict[str, object]:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-request-id"]
    assert rest == b"", rest  # nothing more, the connection closed
    return answer.error()


@pytest.mark.parametrize("poison", [b"\x07", b"\x00", b"\x7f", b"\x1b"], ids=repr)
def test_a_control_character_in_a_header_is_a_400_naming_the_header(
    server: ServerProcess, poison: bytes
) -> None:
    answer, rest = exchange(server, get("/health", b"X-Note: a" + poison + b"b"))
    error = assert_refused(answer, rest, 400)
    assert error["error"] == "Validation Error"
    assert error["message"] == "X-Note: must not contain control characters"


def test_a_refusal_has_the_security_headers_of_the_apps_own_errors(server: ServerProcess) -> None:
    answer, rest = exchange(server, get("/health", b"X-Note: a\x01b"))
    assert_refused(answer, rest, 400)
    with connect(server) as sock, sock.makefile("rb") as reader:
        sock.sendall(get("/api/no-such-route", close=True))
        own = read_answer(reader)
    assert own.status == 404, own.body
    assert own.error()["error"] == "Not Found"
    assert {n: answer.headers.get(n) for n in SECURITY} == {n: own.headers.get(n) for n in SECURITY}
    assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "server" not in answer.headers


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE", b"G@T /health HTTP/1.1", b"GET /a b HTTP/1.1", b"GET /\x01 HTTP/1.1"],
    ids=repr,
)
def test_a_malformed_request_line_is_a_400(server: ServerProcess, request_line: bytes) -> None:
    answer, rest = exchange(server, request_line + b"\r\nHost: sora2\r\n\r\n")
    error = assert_refused(answer, rest, 400)
    assert str(error["message"]).startswith("malformed request"), error


def test_a_head_over_16_kib_is_a_431(server: ServerProcess) -> None:
    answer, rest = exchange(server, get("/health", b"X-Big: " + b"a" * 20 * 1024))
    error = assert_refused(answer, rest, 431)
    assert error["error"] == "Request Header Fields Too Large"
    assert "16 KiB" in str(error["message"])
    just_under = get("/health", b"X-Big: " + b"a" * 15 * 1024, close=True)
    answer, _ = exchange(server, just_under)
    assert answer.status == 200, answer.body


def test_a_head_that_keeps_coming_is_a_431_before_it_ends(server: ServerProcess) -> None:
    with connect(server) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: sora2\r\n")
        for n in range(40):  # never the blank line that ends the head
            try:
                sock.sendall(f"X-Line-{n}: ".encode() + b"a" * 1024 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # refused and closed while still sending
        answer = read_answer(reader)
    assert answer.status == 431, answer.body
    answer.error()


def test_two_requests_on_one_connection_are_both_answered(server: ServerProcess) -> None:
    with connect(server) as sock, sock.makefile("rb") as reader:
        sock.sendall(get("/health"))
        first = read_answer(reader)
        sock.sendall(get("/api/no-such-route", close=True))
        second = read_answer(reader)
        assert reader.read() == b""
    assert first.status == 200 and json.loads(first.body)["status"] == "ok", first.body
    assert "connection" not in first.headers  # kept alive
    assert second.status == 404, second.body
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_pipelined_requests_are_answered_in_order(server: ServerProcess) -> None:
    paths = ["/health", "/api/no-such-route", "/health", "/api/videos"]
    with connect(server) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"".join(get(p, close=i == len(paths) - 1) for i, p in enumerate(paths)))
        answers = [read_answer(reader) for _ in paths]
        assert reader.read() == b""
    assert [a.status for a in answers] == [200, 404, 200, 401], [a.body for a in answers]
    assert "no-such-route" in str(answers[1].error()["message"])


def test_a_malformed_request_behind_a_good_one_ends_the_connection_after_its_answer(
    server: ServerProcess,
) -> None:
    with connect(server) as sock, sock.makefile("rb") as reader:
        sock.sendall(get("/health") + get("/health", b"X-Note: a\x07b"))
        first = read_answer(reader)
        rest = reader.read()
    assert first.status == 200, first.body
    # answered after the first (if it was read after that answer ended), or closed unanswered
    assert rest == b"" or rest.startswith(b"HTTP/1.1 400 "), rest
