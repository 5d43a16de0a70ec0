"""The `sora2` command: `serve` the API, `worker` to render videos, `ledger …` for auditors,
`admin grant|revoke` for operators."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, NoReturn

import uvicorn

from sora2.config import ConfigError, Settings

if TYPE_CHECKING:
    from sora2.bootstrap import Sora2

log = logging.getLogger("sora2")
EXIT_USAGE = 2
# after SIGTERM: how long open requests get before uvicorn cancels them (streams end at once)
GRACE_SECONDS = 5


class Parser(argparse.ArgumentParser):
    """An argument error is one line (and exit 2), as every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def sora2_version() -> str:
    try:
        return version("sora2")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """The `sora2` command: its exit code. Errors are one line on stderr: 2 when the
    command cannot run as asked (arguments, configuration, a file, a service away)."""
    from sora2.adapters.logs import configure_logging

    configure_logging(json=False)  # until the settings say which format
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # an operator reads one line; the trace is for --debug runs
        log.debug("the command failed", exc_info=True)
        print(f"sora2: {_describe(error)}", file=sys.stderr)
        return EXIT_USAGE


def _main(argv: list[str] | None) -> int:
    from sora2.adapters.logs import configure_logging

    parser = Parser(prog="sora2", description="Sora2 video-generation backend")
    parser.add_argument("--version", action="version", version=f"sora2 {sora2_version()}")
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
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"sora2: configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(json=settings.log_json, level=settings.log_level)
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


def _describe(error: Exception) -> str:
    """What went wrong, in one line an operator can act on."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or error}: {error.filename}"
    text = " ".join(str(error).split()) or type(error).__name__
    from eventsourcing.persistence import OperationalError as StoreUnavailable
    from psycopg import OperationalError as DatabaseUnavailable

    if isinstance(error, StoreUnavailable | DatabaseUnavailable):
        return f"the database is not reachable: {text}"
    return f"{type(error).__name__}: {text}"[:500]


def worker(settings: Settings) -> int:
    """Take video jobs until SIGTERM/SIGINT; unfinished renders are resumed by the next
    runner (at once on this host, after the lease elsewhere)."""
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


# httptools (llhttp) under our protocol: it answers what it refuses in the error shape (an
# import string, as each process of `--workers N` loads it itself)
HTTP_PARSER = "sora2.adapters.http.protocol:HttpProtocol"


def serve_api(settings: Settings, host: str, port: int, workers: int = 1) -> int:
    """Serve until SIGTERM or SIGINT, then stop within a bounded time and exit 0: open event
    streams end at once (the app hooks the signal, `draining.py`), other requests get
    GRACE_SECONDS, the container closes."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "log_config": None,  # our format (sora2.adapters.logs), already set up
        "access_log": False,  # RequestLog writes one masked line per request instead
        "proxy_headers": False,
        "http": HTTP_PARSER,
        "server_header": False,  # no banner naming the server software
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }
    # Before uvicorn takes SIGTERM over (start-up), and when it re-raises it once it is done,
    # it ends the command with exit 0 after closing the container: a supervisor reads any
    # other code as a crash.
    signal.signal(signal.SIGTERM, _stop_asked)
    if workers > 1:  # each process builds its own container from the environment
        serve_processes(workers, options)
        return 0
    from sora2.adapters.http.app import create_app
    from sora2.bootstrap import bootstrap

    sora2 = bootstrap(settings)
    app = create_app(sora2)
    try:
        uvicorn.run(app, **options)
    finally:
        sora2.close()
    return 0


def serve_processes(workers: int, options: dict[str, Any]) -> None:
    """uvicorn's supervisor (restarts a worker that dies, passes signals on), each worker
    on its own socket of the port (`reuse_port.py`)."""
    from uvicorn.supervisors import Multiprocess

    from sora2.adapters.http.reuse_port import reuse_port_socket

    config = uvicorn.Config(
        "sora2.adapters.http.processes:app_of_this_process",
        factory=True,
        workers=workers,
        **options,
    )
    sock = reuse_port_socket(config.host, config.port)
    log.info("serving on http://%s:%d with %d processes", config.host, config.port, workers)
    Multiprocess(config, sockets=[sock]).run()


def _stop_asked(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
