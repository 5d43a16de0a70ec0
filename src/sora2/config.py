"""Settings from the environment (and `.env`), with the spec's defaults.

Development runs with no environment at all; production (`NODE_ENV=production`) refuses
to start without strong secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

log = logging.getLogger("sora2.config")

WEAK_SECRETS = {"your-secret-key", "your-refresh-secret-key", "secret", "changeme", "password"}
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """The configuration cannot work; the message says which variable and why."""


@dataclass(frozen=True)
class Settings:
    port: int = 3001
    host: str = "0.0.0.0"
    node_env: str = "development"
    frontend_url: str = "http://localhost:3000"
    public_url: str = "http://localhost:3001"
    database_url: str | None = None
    postgres_schema: str | None = None
    var_dir: Path = Path("./var")
    jwt_secret: str = ""
    jwt_refresh_secret: str = ""
    jwt_expires_in: timedelta = timedelta(minutes=15)
    jwt_refresh_expires_in: timedelta = timedelta(days=7)
    redis_host: str | None = None
    redis_port: int = 6379
    upload_dir: Path = Path("./uploads")
    aws_s3_bucket: str | None = None
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    s3_endpoint: str | None = None
    nats_url: str | None = None
    nats_stream: str = "SORA2"
    nats_subject_prefix: str = "sora2"
    smtp_url: str | None = None
    video_credits_per_second: int = 1
    signup_bonus_credits: int = 10
    credit_price: Decimal = Decimal("0.10")
    rate_limit_enabled: bool = True
    trusted_proxies: tuple[str, ...] = ()
    job_concurrency: int = 2
    video_jobs: str = "inline"  # "inline": this process renders; "off": `sora2 worker` does
    job_lease_seconds: int = 60
    video_provider_url: str | None = None
    video_provider_api_key: str | None = field(default=None, repr=False)
    video_provider_model: str = "sora-2"
    render_font_path: Path | None = None
    payments_sandbox: bool = True  # every method pays at once; off by default in production
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str = "https://api.stripe.com"
    stripe_currency: str = "usd"

    @property
    def production(self) -> bool:
        return self.node_env == "production"

    @property
    def sqlite_path(self) -> Path:
        return self.var_dir / "sora2.sqlite"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
        values = dict(read_dotenv(dotenv or Path(".env")))
        values.update(os.environ if env is None else env)
        get = lambda name, default=None: (values.get(name) or "").strip() or default  # noqa: E731
        node_env = get("NODE_ENV", "development")
        port = _int(get("PORT", "3001"), "PORT", 1, 65535)
        var_dir = Path(get("SORA2_VAR_DIR", "./var"))
        settings = cls(
            port=port,
            host=get("HOST", "0.0.0.0"),
            node_env=node_env,
            frontend_url=get("FRONTEND_URL", "http://localhost:3000").rstrip("/"),
            public_url=get("PUBLIC_URL", f"http://localhost:{port}").rstrip("/"),
            database_url=get("DATABASE_URL"),
            postgres_schema=get("POSTGRES_SCHEMA"),
            var_dir=var_dir,
            jwt_secret=get("JWT_SECRET", ""),
            jwt_refresh_secret=get("JWT_REFRESH_SECRET", ""),
            jwt_expires_in=parse_duration(get("JWT_EXPIRES_IN", "15m"), "JWT_EXPIRES_IN"),
            jwt_refresh_expires_in=parse_duration(
                get("JWT_REFRESH_EXPIRES_IN", "7d"), "JWT_REFRESH_EXPIRES_IN"
            ),
            redis_host=get("REDIS_HOST"),
            redis_port=_int(get("REDIS_PORT", "6379"), "REDIS_PORT", 1, 65535),
            upload_dir=Path(get("UPLOAD_DIR", "./uploads")),
            aws_s3_bucket=get("AWS_S3_BUCKET"),
            aws_region=get("AWS_REGION", "us-east-1"),
            aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            s3_endpoint=get("S3_ENDPOINT"),
            nats_url=get("NATS_URL"),
            nats_stream=get("NATS_STREAM", "SORA2"),
            nats_subject_prefix=get("NATS_SUBJECT_PREFIX", "sora2"),
            smtp_url=get("SMTP_URL"),
            video_credits_per_second=_int(
                get("VIDEO_CREDITS_PER_SECOND", "1"), "VIDEO_CREDITS_PER_SECOND", 1, 10_000
            ),
            signup_bonus_credits=_int(
                get("SIGNUP_BONUS_CREDITS", "10"), "SIGNUP_BONUS_CREDITS", 0, 1_000_000
            ),
            credit_price=_decimal(get("CREDIT_PRICE", "0.10"), "CREDIT_PRICE"),
            rate_limit_enabled=_bool(get("RATE_LIMIT_ENABLED", "true"), "RATE_LIMIT_ENABLED"),
            trusted_proxies=tuple(
                p.strip() for p in get("TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            job_concurrency=_int(get("VIDEO_JOB_CONCURRENCY", "2"), "VIDEO_JOB_CONCURRENCY", 1, 64),
            video_jobs=_choice(get("VIDEO_JOBS", "inline"), "VIDEO_JOBS", ("inline", "off")),
            job_lease_seconds=_int(
                get("VIDEO_JOB_LEASE_SECONDS", "60"), "VIDEO_JOB_LEASE_SECONDS", 2, 86_400
            ),
            video_provider_url=get("VIDEO_PROVIDER_URL"),
            video_provider_api_key=get("VIDEO_PROVIDER_API_KEY"),
            video_provider_model=get("VIDEO_PROVIDER_MODEL", "sora-2"),
            render_font_path=Path(p) if (p := get("RENDER_FONT_PATH")) else None,
            payments_sandbox=_bool(
                get("PAYMENTS_SANDBOX", "false" if node_env == "production" else "true"),
                "PAYMENTS_SANDBOX",
            ),
            stripe_secret_key=get("STRIPE_SECRET_KEY"),
            stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
            stripe_currency=get("STRIPE_CURRENCY", "usd").lower(),
        )
        if settings.production and not get("PUBLIC_URL"):
            log.warning(
                "PUBLIC_URL is not set: video, share and avatar links will point at %s",
                settings.public_url,
            )
        return settings.with_secrets()

    def with_secrets(self) -> Settings:
        """Check the JWT secrets; in development, fill missing ones from `var/`."""
        problems = [
            f"{name} is {why}"
            for name, value in (
                ("JWT_SECRET", self.jwt_secret),
                ("JWT_REFRESH_SECRET", self.jwt_refresh_secret),
            )
            if (why := _weakness(value))
        ]
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            problems.append("STRIPE_WEBHOOK_SECRET is missing (payments could never be confirmed)")
        if self.jwt_secret and self.jwt_secret == self.jwt_refresh_secret:
            problems.append("JWT_SECRET and JWT_REFRESH_SECRET must differ")
        if not problems:
            return self
        if self.production:
            raise ConfigError(
                "refusing to start in production: "
                + "; ".join(problems)
                + f". Set each to a random value of at least {MIN_SECRET_LENGTH} characters,"
                " e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        generated = _dev_secrets(self.var_dir)
        log.warning(
            "development mode: %s; using generated secrets kept in %s",
            "; ".join(problems),
            self.var_dir / "dev-secrets.json",
        )
        from dataclasses import replace

        return replace(
            self,
            jwt_secret=generated["JWT_SECRET"],
            jwt_refresh_secret=generated["JWT_REFRESH_SECRET"],
        )


def _weakness(value: str) -> str | None:
    if not value:
        return "missing"
    if value.lower() in WEAK_SECRETS or len(value) < MIN_SECRET_LENGTH:
        return f"too weak (use at least {MIN_SECRET_LENGTH} random characters)"
    return None


def _dev_secrets(var_dir: Path) -> dict[str, str]:
    """Generated once and kept, so development tokens survive a restart."""
    path = var_dir / "dev-secrets.json"
    try:
        stored = json.loads(path.read_text())
        if all(_weakness(stored.get(k, "")) is None for k in ("JWT_SECRET", "JWT_REFRESH_SECRET")):
            return stored
    except (OSError, ValueError):
        pass
    stored = {k: secrets.token_urlsafe(48) for k in ("JWT_SECRET", "JWT_REFRESH_SECRET")}
    var_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored))
    path.chmod(0o600)
    return stored


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines; `#` comments; optional quotes. Missing file: nothing."""
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, name: str) -> timedelta:
    """`15m`, `7d`, `3600` (seconds), as the seed's JWT settings are written."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{name} must be a duration like 15m, 12h, 7d or 3600, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a decimal amount, not {text!r}") from None
    if not value.is_finite() or value < Decimal("0.01"):
        raise ConfigError(f"{name} must be an amount of at least 0.01, not {text!r}")
    return value


def _choice(text: str, name: str, choices: tuple[str, ...]) -> str:
    if text.lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {text!r}")
    return text.lower()


def _bool(text: str, name: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {text!r}")
