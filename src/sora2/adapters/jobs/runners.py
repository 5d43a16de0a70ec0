"""Who renders: each process's runner id, and whether the runner behind an id is gone.

An id is `host:pid:token`. A runner on this host whose pid no longer exists crashed, so
its jobs can be taken over at once instead of waiting for its lease to run out.
"""

from __future__ import annotations

import os
import secrets
import socket


def new_runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def runner_is_gone(runner: str) -> bool:
    parts = runner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another machine's runner: only its lease can tell
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
