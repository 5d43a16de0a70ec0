"""Settings from the environment (and `.env`), with the spec's defaults.

pydantic-settings parses them (python-dotenv reads `.env`: comments, quotes, `export`), so a
setting is one line below: its name in lower case is the variable (`order_expires_in` ←
`ORDER_EXPIRES_IN`), its type says how the text is read (`Duration`: `15m`, `7d`;
`CommaList`: `a, b` or a JSON list), its default is the spec's. Every variable is listed in
`.env.example` and README's table (tests/unit/test_env_example.py checks both).

Development and test run with no environment at all; production (`NODE_ENV=production`)
refuses to start without strong secrets or with the sandbox payment provider.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

log = logging.getLogger("sora2.config")

MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 80  # estimated from the characters' spread, see `_weakness`
# the seed's and .env.example's placeholders, and words people type instead of a secret
WEAK_SECRETS = {
    "your-secret-key",
    "your-refresh-secret-key",
    "secret",
    "changeme",
    "password",
    "change-me-to-48-random-characters-for-access-tokens",
    "change-me-to-48-other-random-characters-for-refresh",
}
NODE_ENVS = ("development", "test", "production")


class ConfigError(Exception):
    """The configuration cannot work; the message says which variable and why."""


_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, name: str = "duration") -> timedelta:
    """`15m`, `7d`, `3600` (seconds), as the seed's JWT settings are written."""
    match = _DURATION.match(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{name} must be a duration like 15m, 12h, 7d or 3600, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except ConfigError:
        raise ValueError("must be a duration like 15m, 12h, 7d or 3600") from None


def _comma_list(value: Any) -> Any:
    """`a, b` or `["a", "b"]` → ("a", "b"); empty items dropped."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return tuple(str(item).strip() for item in json.loads(text) if str(item).strip())
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Types a setting can have beyond str/int/bool/Decimal/Path (which pydantic reads itself)
Duration = Annotated[timedelta, BeforeValidator(_duration)]
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]
Port = Annotated[int, Field(ge=1, le=65535)]

SECRET = {"repr": False}  # never shown in a repr, a log line or an error message

# (the mapping, the .env path) that `from_env` reads; pydantic-settings asks for its sources
# on a classmethod, so they travel in a context variable
_SOURCES: ContextVar[tuple[Mapping[str, str], Path]] = ContextVar("settings_sources")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,
        str_strip_whitespace=True,
    )

    port: Port = 3001
    host: str = "0.0.0.0"
    node_env: Literal["development", "test", "production"] = "development"
    frontend_url: str = "http://localhost:3000"
    public_url: str = ""  # empty: http://localhost:$PORT
    database_url: str | None = Field(None, **SECRET)  # it may carry a password
    postgres_schema: str | None = None
    var_dir: Path = Field(Path("./var"), validation_alias="SORA2_VAR_DIR")
    jwt_secret: str = Field("", **SECRET)
    jwt_refresh_secret: str = Field("", **SECRET)
    jwt_expires_in: Duration = timedelta(minutes=15)
    jwt_refresh_expires_in: Duration = timedelta(days=7)
    # a session ends this long after its sign-in however often it is refreshed
    jwt_refresh_absolute_lifetime: Duration = timedelta(days=30)
    redis_host: str | None = None
    redis_port: Port = 6379
    upload_dir: Path = Path("./uploads")
    aws_s3_bucket: str | None = None
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(None, **SECRET)
    s3_endpoint: str | None = None
    nats_url: str | None = None
    nats_stream: str = "SORA2"
    nats_subject_prefix: str = "sora2"
    # Ed25519, PEM or base64 of the 32-byte seed: signs ledger checkpoints (never in the DB)
    ledger_signing_key: str | None = Field(None, **SECRET)
    ledger_public_key: str | None = None  # what `ledger verify --against` trusts
    smtp_url: str | None = Field(None, **SECRET)
    video_credits_per_second: Annotated[int, Field(ge=1, le=10_000)] = 1
    signup_bonus_credits: Annotated[int, Field(ge=0, le=1_000_000)] = 10
    credit_price: Annotated[Decimal, Field(ge=Decimal("0.01"), allow_inf_nan=False)] = Decimal(
        "0.10"
    )
    order_expires_in: Duration = timedelta(minutes=30)  # unpaid longer: CANCELLED
    rate_limit_enabled: bool = True
    trusted_proxies: CommaList = ()
    job_concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        2, validation_alias="VIDEO_JOB_CONCURRENCY"
    )
    # "inline": this process renders; "off": `sora2 worker` does
    video_jobs: Annotated[Literal["inline", "off"], BeforeValidator(_lower)] = "inline"
    job_lease_seconds: Annotated[int, Field(ge=2, le=86_400)] = Field(
        60, validation_alias="VIDEO_JOB_LEASE_SECONDS"
    )
    video_provider_url: str | None = None
    video_provider_api_key: str | None = Field(None, **SECRET)
    video_provider_model: str = "sora-2"
    render_font_path: Path | None = None
    moderation_blocklist: Path | None = None  # blocked prompt terms, one per line
    payments_sandbox: bool = True  # every method pays at once; never in production
    stripe_secret_key: str | None = Field(None, **SECRET)
    stripe_webhook_secret: str | None = Field(None, **SECRET)
    stripe_api_base: str = "https://api.stripe.com"
    stripe_currency: str = "usd"
    alipay_app_id: str | None = None
    alipay_private_key: str | None = Field(None, **SECRET)  # PEM text or a file
    alipay_public_key: str | None = Field(None, repr=False)  # Alipay's, not ours
    alipay_gateway: str = "https://openapi.alipay.com/gateway.do"
    wechat_mch_id: str | None = None
    wechat_app_id: str | None = None
    wechat_api_v3_key: str | None = Field(None, **SECRET)
    wechat_private_key: str | None = Field(None, **SECRET)  # PEM text or a file
    wechat_cert_serial: str | None = None
    wechat_platform_public_key: str | None = Field(None, repr=False)
    wechat_platform_key_id: str | None = None  # PUB_KEY_ID_…
    wechat_api_base: str = "https://api.mch.weixin.qq.com"
    media_url_ttl: Duration = timedelta(hours=1)  # life of the signed videoUrl/thumbnailUrl
    # a comment line at least this often on a quiet stream (proxies drop silent ones)
    sse_heartbeat_seconds: Annotated[int, Field(ge=1, le=15)] = 15
    sse_retry_ms: Annotated[int, Field(ge=1, le=3_600_000)] = 3000  # EventSource's `retry:`
    # a stream ends after this long and the client resumes it (0: only at the final state)
    sse_stream_max_seconds: Annotated[int, Field(ge=0, le=86_400)] = 0
    log_level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = (
        "info"
    )
    # auto: JSON lines in production, readable text elsewhere
    log_format: Annotated[Literal["auto", "json", "text"], BeforeValidator(_lower)] = "auto"

    @field_validator("node_env", mode="before")
    @classmethod
    def _known_environment(cls, value: Any) -> Any:
        if _lower(value) not in NODE_ENVS:
            raise ValueError(f"must be one of {', '.join(NODE_ENVS)} (any case)")
        return _lower(value)

    @field_validator("frontend_url", "public_url", "stripe_api_base", "wechat_api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("moderation_blocklist")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                value.read_bytes()
            except OSError as error:
                raise ValueError(f"must name a readable file ({error.strerror})") from None
        return value

    @field_validator("stripe_currency")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        """`KEY=` or `KEY=   ` means the default, as an absent variable does."""
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        return values

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ, dotenv = _SOURCES.get((os.environ, Path(".env")))
        # the environment wins over `.env`
        return (
            init_settings,
            _MappingSource(settings_cls, environ),
            DotEnvSettingsSource(settings_cls, env_file=dotenv),
        )

    @property
    def production(self) -> bool:
        return self.node_env == "production"

    @property
    def log_json(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and self.production)

    @property
    def sqlite_path(self) -> Path:
        return self.var_dir / "sora2.sqlite"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
        """The settings of `env` (default: the process environment) over `dotenv`'s
        (default `./.env`); raises ConfigError naming each variable that cannot work."""
        token = _SOURCES.set((os.environ if env is None else env, dotenv or Path(".env")))
        try:
            settings = cls()
        except ValidationError as error:
            raise ConfigError(_problems(error)) from None
        finally:
            _SOURCES.reset(token)
        return settings._completed()

    def _completed(self) -> Settings:
        given = self.model_fields_set
        derived: dict[str, Any] = {}
        if not self.public_url:
            derived["public_url"] = f"http://localhost:{self.port}"
            if self.production:
                log.warning(
                    "PUBLIC_URL is not set: video, share and avatar links will point at %s",
                    derived["public_url"],
                )
        if self.production and "payments_sandbox" not in given:
            derived["payments_sandbox"] = False
        settings = self.model_copy(update=derived) if derived else self
        settings.check_payment_providers()
        return settings.with_secrets()

    @property
    def alipay_configured(self) -> bool:
        return all(value for _, value in self._alipay())

    @property
    def wechat_configured(self) -> bool:
        return all(value for _, value in self._wechat())

    def _alipay(self) -> list[tuple[str, str | None]]:
        return [
            ("ALIPAY_APP_ID", self.alipay_app_id),
            ("ALIPAY_PRIVATE_KEY", self.alipay_private_key),
            ("ALIPAY_PUBLIC_KEY", self.alipay_public_key),
        ]

    def _wechat(self) -> list[tuple[str, str | None]]:
        return [
            ("WECHAT_MCH_ID", self.wechat_mch_id),
            ("WECHAT_APP_ID", self.wechat_app_id),
            ("WECHAT_API_V3_KEY", self.wechat_api_v3_key),
            ("WECHAT_PRIVATE_KEY", self.wechat_private_key),
            ("WECHAT_CERT_SERIAL", self.wechat_cert_serial),
            ("WECHAT_PLATFORM_PUBLIC_KEY", self.wechat_platform_public_key),
            ("WECHAT_PLATFORM_KEY_ID", self.wechat_platform_key_id),
        ]

    def check_payment_providers(self) -> None:
        """A provider is on when all its settings are set and off when none are; anything
        between, or a key that cannot work, stops start-up here rather than failing the
        first customer's payment."""
        from sora2.adapters.payments.keys import load_private_key, load_public_key

        for provider, group in (("Alipay", self._alipay()), ("WeChat Pay", self._wechat())):
            missing = [name for name, value in group if not value]
            if missing and len(missing) < len(group):
                raise ConfigError(
                    f"{provider} is half configured: {', '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} missing (set all of "
                    f"{', '.join(name for name, _ in group)}, or none)"
                )
        keys = []
        if self.alipay_configured:
            _url(self.alipay_gateway, "ALIPAY_GATEWAY", path_allowed=True)
            keys += [
                (load_private_key, self.alipay_private_key, "ALIPAY_PRIVATE_KEY"),
                (load_public_key, self.alipay_public_key, "ALIPAY_PUBLIC_KEY"),
            ]
        if self.wechat_configured:
            _url(self.wechat_api_base, "WECHAT_API_BASE", path_allowed=False)
            v3_key = self.wechat_api_v3_key or ""
            if len(v3_key) != 32 or not v3_key.isascii() or not v3_key.isprintable():
                raise ConfigError(
                    "WECHAT_API_V3_KEY must be the 32 ASCII characters set in the merchant "
                    f"platform (APIv3 key), not {len(v3_key)} characters"
                )
            keys += [
                (load_private_key, self.wechat_private_key, "WECHAT_PRIVATE_KEY"),
                (load_public_key, self.wechat_platform_public_key, "WECHAT_PLATFORM_PUBLIC_KEY"),
            ]
        for load, value, name in keys:
            try:
                load(value or "", name)
            except ValueError as e:
                raise ConfigError(str(e)) from None

    def with_secrets(self) -> Settings:
        """Check the secrets and production's rules; in development, fill missing or weak
        JWT secrets from `var/`."""
        problems = [
            f"{name} is {why}"
            for name, value in (
                ("JWT_SECRET", self.jwt_secret),
                ("JWT_REFRESH_SECRET", self.jwt_refresh_secret),
            )
            if (why := _weakness(value))
        ]
        if self.jwt_secret and self.jwt_secret == self.jwt_refresh_secret:
            problems.append("JWT_REFRESH_SECRET must differ from JWT_SECRET")
        fatal = []
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            fatal.append("STRIPE_WEBHOOK_SECRET is missing (payments could never be confirmed)")
        if self.production and self.payments_sandbox:
            fatal.append(
                "PAYMENTS_SANDBOX=true hands out credits for nothing; it exists in development"
                " and test only"
            )
        if self.production and (problems or fatal):
            raise ConfigError(
                "refusing to start in production: "
                + "; ".join(problems + fatal)
                + (
                    f". Set each secret to a random value of at least {MIN_SECRET_LENGTH}"
                    " characters, e.g. `python -c 'import secrets;"
                    " print(secrets.token_urlsafe(48))'`."
                    if problems
                    else "."
                )
            )
        if fatal:
            raise ConfigError("; ".join(fatal))
        if not problems:
            return self
        generated = _dev_secrets(self.var_dir)
        log.warning(
            "%s mode: %s; using generated secrets kept in %s",
            self.node_env,
            "; ".join(problems),
            self.var_dir / "dev-secrets.json",
        )
        return self.model_copy(
            update={
                "jwt_secret": generated["JWT_SECRET"],
                "jwt_refresh_secret": generated["JWT_REFRESH_SECRET"],
            }
        )


def _url(text: str, name: str, path_allowed: bool) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, not {text!r}")
    if not path_allowed and parts.path not in ("", "/"):
        raise ConfigError(f"{name} must be a base URL without a path, not {text!r}")


def env_names() -> dict[str, str]:
    """Each setting's variable: {field name: VARIABLE}."""
    return {
        name: (field.validation_alias if isinstance(field.validation_alias, str) else name.upper())
        for name, field in Settings.model_fields.items()
    }


class _MappingSource(EnvSettingsSource):
    """The environment source, over a mapping of our choice (tests pass their own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _problems(error: ValidationError) -> str:
    """One sentence per bad variable; a secret's value is never repeated."""
    names = env_names()
    secret = {n for n, f in Settings.model_fields.items() if f.repr is False}
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        name = names.get(field) or names.get(field.lower()) or field.upper()
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "literal_error" or problem["type"] == "enum":
            message = f"must be {problem['ctx']['expected']}"
        text = f"{name} {message[:1].lower()}{message[1:]}"
        if field not in secret and field.lower() not in secret:
            shown = problem["input"]
            text += f", not {shown.strip() if isinstance(shown, str) else shown!r}"
        lines.append(text)
    return "; ".join(lines)


def _weakness(value: str) -> str | None:
    """Why a secret would be guessable, or None.

    Length alone lets `'a' * 32` through; a secret must also spread over many characters
    (none of them a third of it; estimated bits: its length × the Shannon entropy of
    its characters) and not repeat a shorter piece. 32 random hex digits pass.
    """
    if not value:
        return "missing"
    if value.lower() in WEAK_SECRETS:
        return "a published example value"
    if len(value) < MIN_SECRET_LENGTH:
        return f"too short (use at least {MIN_SECRET_LENGTH} random characters)"
    counts = Counter(value)
    bits = -sum(c * math.log2(c / len(value)) for c in counts.values())
    spread = len(counts) >= 8 and counts.most_common(1)[0][1] <= len(value) / 3
    if not spread or bits < MIN_SECRET_BITS or _repeats(value):
        return "too weak: too few different characters, or a repeated piece (use random ones)"
    return None


def _repeats(value: str) -> bool:
    """True if `value` is a shorter piece said again (`abcabcabc…`)."""
    return any(
        value == (value[:size] * (len(value) // size + 1))[: len(value)]
        for size in range(1, len(value) // 2 + 1)
    )


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
