"""The relay's own HPUB frames: byte for byte what nats-py's `publish` puts on the wire."""

from __future__ import annotations

import pytest
from nats.protocol.command import hpub_cmd

from sora2.adapters.nats.frames import check_subject, hpub


def nats_py_frame(subject: str, reply: str, headers: dict[str, str], payload: bytes) -> bytes:
    """The frame `Client._send_publish` builds (nats-py 2.16)."""
    block = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    return hpub_cmd(subject, reply, block + b"\r\n", payload)


def test_a_frame_with_a_reply_is_the_one_nats_py_builds() -> None:
    headers = {"Nats-Msg-Id": "5d1c0e9a-0000-5000-8000-000000000001", "Sora2-Log-Position": "42"}
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    payload = '{"type":"user.registered","name":"Zoë"}'.encode()

    frame = hpub("sora2.user.registered", "_INBOX.abc.7", lines, payload)

    assert frame == nats_py_frame("sora2.user.registered", "_INBOX.abc.7", headers, payload)


def test_a_frame_without_a_reply_leaves_the_reply_out() -> None:
    frame = hpub("sora2.x", "", "Nats-Msg-Id: 1\r\n", b"{}")

    assert frame == b"HPUB sora2.x 28 30\r\nNATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n{}\r\n"
    assert frame == nats_py_frame("sora2.x", "", {"Nats-Msg-Id": "1"}, b"{}").replace(
        b"  ", b" ", 1
    )


@pytest.mark.parametrize("subject", ["", "sora2 x", "sora2.x\r\nPUB evil 0", "a\tb"])
def test_a_subject_that_would_break_a_frame_is_refused(subject: str) -> None:
    with pytest.raises(ValueError):
        check_subject(subject)
