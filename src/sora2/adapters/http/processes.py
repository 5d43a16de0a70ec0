"""The app of one of several HTTP processes (`sora2 serve --workers N`).

uvicorn starts each process and calls this factory in it: the process builds its own
container, shares the database (and Redis, NATS, S3) with the others, and closes the
container when the app ends (uvicorn then ends the process).
"""

from __future__ import annotations

from litestar import Litestar

from sora2.adapters.http.app import create_app
from sora2.adapters.logs import configure_logging
from sora2.bootstrap import bootstrap
from sora2.config import Settings


def app_of_this_process() -> Litestar:
    settings = Settings.from_env()
    configure_logging(json=settings.log_json, level=settings.log_level)  # a fresh process
    sora2 = bootstrap(settings, shared_processes=True)
    return create_app(sora2, close_with_app=True)  # uvicorn ends this process after it
