"""`sora2 …` as an operator runs it: a separate process over the test's store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sora2.config import Settings
from tests.support.backends import cli_env

SORA2 = Path(sys.executable).with_name("sora2")
# variables of the test process that would point a command at another service
FOREIGN = ("NATS_URL", "REDIS_HOST", "AWS_S3_BUCKET", "SMTP_URL", "VIDEO_PROVIDER_URL")


def sora2_command(settings: Settings, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in cli_env(settings, folder).items() if k not in FOREIGN}
    return subprocess.run(
        [str(SORA2), *args],
        cwd=folder,  # no stray .env
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout
