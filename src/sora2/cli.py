"""The `sora2` command: `serve` the API, `worker` to render videos, `ledger …` for auditors,
`admin grant|revoke` for operators."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from sora2.config import ConfigError, Settings

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sora2", description="Sora2 video-generation backend")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default=None, help="address to bind (default HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default PORT or 3001)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="HTTP processes sharing the port (default WEB_CONCURRENCY or the machine's "
        "cores; each follows the log itself and its queries wait for the log's head, so a "
        "write through one is seen through every other)",
    )
    commands.add_parser(
        "worker", help="render video jobs from the log (with VIDEO_JOBS=off in the API processes)"
    )
    from sora2.adapters.cli_ledger import add_ledger_commands

    add_ledger_commands(commands)
    from sora2.adapters.cli_views import add_views_commands

    add_views_commands(commands)
    from sora2.adapters.cli_admin import add_admin_commands

    add_admin_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"sora2: configuration error: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        host, port = args.host or settings.host, args.port or settings.port
        try:
            workers = args.workers or default_workers()
        except ConfigError as error:
            print(f"sora2: configuration error: {error}", file=sys.stderr)
            return 2
        return serve_api(settings, host, port, max(1, workers))
    if args.command == "ledger":
        return ledger(args, settings)
    if args.command == "worker":
        return worker(settings)
    if args.command == "views":
        return views(args, settings)
    if args.command == "admin":
        return admin(args, settings)
    return 1


def default_workers() -> int:
    """WEB_CONCURRENCY (the usual name among Python servers), else one per core."""
    value = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not value:
        return _cores()
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"WEB_CONCURRENCY must be a whole number of processes, not {value!r}")
    return int(value)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker(settings: Settings) -> int:
    """Take video jobs until SIGTERM/SIGINT; unfinished renders are resumed by the next
    runner (at once on this host, after the lease elsewhere)."""
    import signal
    import threading

    from sora2.bootstrap import bootstrap

    sora2 = bootstrap(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger("sora2").info("worker %s taking video jobs", sora2.jobs.worker)
    sora2.start(render=True)
    stop.wait()
    sora2.close()
    return 0


def ledger(args: argparse.Namespace, settings: Settings) -> int:
    from sora2.adapters.cli_ledger import run_ledger_command

    return _one_command(settings, lambda sora2: run_ledger_command(args, sora2))


def views(args: argparse.Namespace, settings: Settings) -> int:
    from sora2.adapters.cli_views import run_views_command

    return _one_command(settings, lambda sora2: run_views_command(args, sora2))


def admin(args: argparse.Namespace, settings: Settings) -> int:
    from sora2.adapters.cli_admin import run_admin_command

    return _one_command(settings, lambda sora2: run_admin_command(args, sora2))


def _one_command(settings: Settings, command: Callable[[Sora2], int]) -> int:
    """Run an operator's command on a container of its own (no runner: nothing follows the
    log in the background), then close it."""
    from sora2.bootstrap import bootstrap

    sora2 = bootstrap(settings)
    try:
        return command(sora2)
    finally:
        sora2.close()


# h11 hands a header with a control character to the app, which answers 400 in the error
# shape; httptools would answer with a plain-text 400 before the app sees the request.
HTTP_PARSER = "h11"


def serve_api(settings: Settings, host: str, port: int, workers: int = 1) -> int:
    import uvicorn

    if workers > 1:  # each process builds its own container from the environment
        uvicorn.run(
            "sora2.adapters.http.processes:app_of_this_process",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            proxy_headers=False,
            http=HTTP_PARSER,
            server_header=False,  # no banner naming the server software
        )
        return 0
    from sora2.adapters.http.app import create_app
    from sora2.bootstrap import bootstrap

    sora2 = bootstrap(settings)
    app = create_app(sora2)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            proxy_headers=False,
            http=HTTP_PARSER,
            server_header=False,  # no banner naming the server software
        )
    finally:
        sora2.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
