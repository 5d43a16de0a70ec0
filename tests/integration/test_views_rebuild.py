"""`sora2 views rebuild`, run the way an operator runs it (the CLI) beside a serving API:
the fresh tables equal a fold of the log, and the API answered right all along."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from sora2.config import Settings
from tests.conftest import FastHasher, running_api
from tests.integration.test_projection_rebuild import assert_read_models_equal_the_fold
from tests.support.backends import cli_env
from tests.support.history import make_history


def test_rebuild_swaps_in_equal_tables_while_the_api_serves(
    backend_settings: Settings, tmp_path: Path
) -> None:
    quiet = backend_settings.model_copy(
        update={"video_jobs": "off"}
    )  # no render writes while we compare
    with running_api(quiet, hasher=FastHasher()) as api:
        make_history(api.sora2, users=40)
        _, token = api.register("watcher")
        wrong: list[object] = []
        done = threading.Event()

        def keep_reading() -> None:  # the old tables, then the new: always the right answer
            with api.client(token) as c:
                while not done.is_set():
                    r = c.get("/api/credits/balance")
                    if r.status_code != 200 or r.json() != {"balance": 10}:
                        wrong.append((r.status_code, r.text))

        reader = threading.Thread(target=keep_reading)
        reader.start()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "sora2.cli", "views", "rebuild"],
                env=cli_env(api.sora2.settings, tmp_path),
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            done.set()
            reader.join()
        assert result.returncode == 0, result.stderr
        assert "rebuilt the read models from" in result.stderr
        assert "events/s" in result.stderr
        assert wrong == []
        api.sora2.read_models.wait_for(api.sora2.log.position)
        assert_read_models_equal_the_fold(api.sora2)
        with api.client(token) as c:  # the swapped-in tables keep following the log
            r = c.post("/api/videos/generate", json={"prompt": "after the rebuild"})
            assert r.status_code == 201
            assert c.get("/api/credits/balance").json() == {"balance": 5}
