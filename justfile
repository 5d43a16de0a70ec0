# Sora2 recipes. Run them through ./dev (it prepares .venv first): ./dev serve, ./dev test …

set dotenv-load := false

py := ".venv/bin/python"

# list the recipes (`./dev` alone); just is in .venv/bin, not on PATH
default:
    @"{{just_executable()}}" --list --justfile "{{justfile()}}"

# the API on http://localhost:3001 with embedded defaults (SQLite, local files, local renderer)
serve *args:
    .venv/bin/sora2 serve {{args}}

# a process that renders video jobs (run the API with VIDEO_JOBS=off to leave them to workers)
worker:
    .venv/bin/sora2 worker

# the whole test suite (needs PostgreSQL, Redis and NATS on this machine; moto S3 starts itself)
test *args:
    {{py}} -m pytest -q {{args}}

# fast tests of the domain and application, no servers
unit *args:
    {{py}} -m pytest -q tests/unit {{args}}

# adapter contracts and integration against the real PostgreSQL, NATS, Redis and moto S3
integration *args:
    {{py}} -m pytest -q tests/contracts tests/integration {{args}}

# the API over real HTTP
e2e *args:
    {{py}} -m pytest -q tests/e2e {{args}}

# benchmarks: ratios measured in one run against a baseline on this machine
bench:
    {{py}} bench/run.py

# lint and format check
lint:
    .venv/bin/ruff check src tests bench
    .venv/bin/ruff format --check src tests bench

# operate the read models: `./dev views rebuild`
views *args:
    .venv/bin/sora2 views {{args}}

# ledger audit commands (history, balance as of, verify, export)
ledger *args:
    .venv/bin/sora2 ledger {{args}}
