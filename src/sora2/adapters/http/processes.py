"""The app of one of several HTTP processes (`sora2 serve --workers N`).

uvicorn starts each process and calls this factory in it: the process builds its own
container, shares the database (and Redis, NATS, S3) with the others, and closes the
container when uvicorn ends it.
"""

from __future__ import annotations

import atexit

from litestar import Litestar

from sora2.adapters.http.app import create_app
from sora2.bootstrap import bootstrap
from sora2.config import Settings


def app_of_this_process() -> Litestar:
    sora2 = bootstrap(Settings.from_env(), shared_processes=True)
    atexit.register(sora2.close)
    return create_app(sora2)
