"""Settings from the environment: secrets policy per NODE_ENV, durations, defaults."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from sora2.config import ConfigError, Settings

STRONG = "kR7vQ2mX9pL4tW8zN1bC6hF3jD5sG0aE-yU"  # random-looking, as secrets.token_urlsafe
STRONG_REFRESH = "Zq8v3mN0pLr5tY7wXa2bC4dE6fG9hJkLmNo"


def settings(tmp_path: Path, **env: str) -> Settings:
    base = {"SORA2_VAR_DIR": str(tmp_path / "var")}
    return Settings.from_env({**base, **env}, dotenv=tmp_path / "absent.env")


# --- secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, ["JWT_SECRET", "JWT_REFRESH_SECRET"]),
        ({"JWT_REFRESH_SECRET": STRONG_REFRESH}, ["JWT_SECRET"]),
        ({"JWT_SECRET": STRONG}, ["JWT_REFRESH_SECRET"]),
        ({"JWT_SECRET": "your-secret-key", "JWT_REFRESH_SECRET": STRONG_REFRESH}, ["JWT_SECRET"]),
        (
            {"JWT_SECRET": STRONG, "JWT_REFRESH_SECRET": "your-refresh-secret-key"},
            ["JWT_REFRESH_SECRET"],
        ),
        (
            {"JWT_SECRET": "short-but-random-8x", "JWT_REFRESH_SECRET": STRONG_REFRESH},
            ["JWT_SECRET"],
        ),
        ({"JWT_SECRET": "a" * 48, "JWT_REFRESH_SECRET": STRONG_REFRESH}, ["JWT_SECRET"]),
        ({"JWT_SECRET": STRONG, "JWT_REFRESH_SECRET": STRONG}, ["JWT_REFRESH_SECRET"]),
        ({"JWT_SECRET": "   ", "JWT_REFRESH_SECRET": STRONG_REFRESH}, ["JWT_SECRET"]),
    ],
)
def test_production_refuses_missing_or_weak_secrets(
    tmp_path: Path, env: dict[str, str], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, NODE_ENV="production", **env)
    message = str(refused.value)
    for name in named:
        assert name in message
    assert "production" in message
    assert not (tmp_path / "var" / "dev-secrets.json").exists()  # nothing generated


def test_production_starts_with_strong_distinct_secrets(tmp_path: Path) -> None:
    s = settings(
        tmp_path, NODE_ENV="production", JWT_SECRET=STRONG, JWT_REFRESH_SECRET=STRONG_REFRESH
    )
    assert (s.production, s.jwt_secret, s.jwt_refresh_secret) == (True, STRONG, STRONG_REFRESH)


def test_development_without_secrets_generates_and_keeps_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = settings(tmp_path)
    assert first.node_env == "development" and not first.production
    assert len(first.jwt_secret) >= 32 and len(first.jwt_refresh_secret) >= 32
    assert first.jwt_secret != first.jwt_refresh_secret
    stored = tmp_path / "var" / "dev-secrets.json"
    assert json.loads(stored.read_text()) == {
        "JWT_SECRET": first.jwt_secret,
        "JWT_REFRESH_SECRET": first.jwt_refresh_secret,
    }
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "generated secrets" in caplog.text  # the warning says so
    # a restart reuses them, so development sessions survive it
    again = settings(tmp_path)
    assert (again.jwt_secret, again.jwt_refresh_secret) == (
        first.jwt_secret,
        first.jwt_refresh_secret,
    )
    elsewhere = Settings.from_env(
        {"SORA2_VAR_DIR": str(tmp_path / "other")}, dotenv=tmp_path / "absent.env"
    )
    assert elsewhere.jwt_secret != first.jwt_secret


def test_development_replaces_weak_secrets_too(tmp_path: Path) -> None:
    s = settings(
        tmp_path, JWT_SECRET="your-secret-key", JWT_REFRESH_SECRET="your-refresh-secret-key"
    )
    assert s.jwt_secret not in ("your-secret-key", "your-refresh-secret-key")
    assert len(s.jwt_secret) >= 32


def test_development_keeps_strong_secrets_as_given(tmp_path: Path) -> None:
    s = settings(tmp_path, JWT_SECRET=STRONG, JWT_REFRESH_SECRET=STRONG_REFRESH)
    assert (s.jwt_secret, s.jwt_refresh_secret) == (STRONG, STRONG_REFRESH)
    assert not (tmp_path / "var" / "dev-secrets.json").exists()


# --- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("3600", timedelta(seconds=3600)),
        ("90s", timedelta(seconds=90)),
        (" 30m ", timedelta(minutes=30)),
    ],
)
def test_jwt_expiry_durations_parse(tmp_path: Path, text: str, expected: timedelta) -> None:
    s = settings(tmp_path, JWT_EXPIRES_IN=text, JWT_REFRESH_EXPIRES_IN=text)
    assert s.jwt_expires_in == s.jwt_refresh_expires_in == expected


@pytest.mark.parametrize("text", ["garbage", "15 minutes", "m15", "-5m", "0", "0m", "1.5h", "7w"])
def test_a_garbage_duration_is_a_config_error(tmp_path: Path, text: str) -> None:
    for name in ("JWT_EXPIRES_IN", "JWT_REFRESH_EXPIRES_IN"):
        with pytest.raises(ConfigError) as refused:
            settings(tmp_path, **{name: text})
        assert name in str(refused.value)
        assert repr(text.strip()) in str(refused.value)


# --- defaults and other values ----------------------------------------------------------


def test_defaults_follow_the_spec(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.port == 3001
    assert s.frontend_url == "http://localhost:3000"
    assert s.jwt_expires_in == timedelta(minutes=15)
    assert s.jwt_refresh_expires_in == timedelta(days=7)
    assert s.upload_dir == Path("./uploads")
    assert s.signup_bonus_credits == 10
    assert s.credit_price == Decimal("0.10")
    assert s.video_credits_per_second == 1
    assert s.rate_limit_enabled is True
    assert s.trusted_proxies == ()
    assert s.database_url is None and s.redis_host is None and s.nats_url is None


def test_values_are_read_from_the_environment(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        PORT="8080",
        FRONTEND_URL="https://app.example.com/",
        CREDIT_PRICE="0.25",
        SIGNUP_BONUS_CREDITS="0",
        RATE_LIMIT_ENABLED="false",
        TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1",
        REDIS_HOST="cache",
        REDIS_PORT="6380",
    )
    assert (s.port, s.frontend_url, s.public_url) == (
        8080,
        "https://app.example.com",
        "http://localhost:8080",
    )
    assert (s.credit_price, s.signup_bonus_credits, s.rate_limit_enabled) == (
        Decimal("0.25"),
        0,
        False,
    )
    assert s.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert (s.redis_host, s.redis_port) == ("cache", 6380)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "70000"),
        ("REDIS_PORT", "0"),
        ("CREDIT_PRICE", "free"),
        ("CREDIT_PRICE", "-1"),
        ("CREDIT_PRICE", "NaN"),
        ("SIGNUP_BONUS_CREDITS", "-1"),
        ("RATE_LIMIT_ENABLED", "maybe"),
    ],
)
def test_invalid_values_name_their_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, **{name: value})
    assert name in str(refused.value)


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nPORT=4000\nexport FRONTEND_URL='https://dotenv.example'\nCREDIT_PRICE=0.5\n"
    )
    s = Settings.from_env(
        {"SORA2_VAR_DIR": str(tmp_path / "var"), "CREDIT_PRICE": "0.2"}, dotenv=dotenv
    )
    assert (s.port, s.frontend_url, s.credit_price) == (
        4000,
        "https://dotenv.example",
        Decimal("0.2"),
    )


# --- NODE_ENV, sandbox payments, weak secrets (issue 15) --------------------------------

PRODUCTION_SECRETS = {"JWT_SECRET": STRONG, "JWT_REFRESH_SECRET": STRONG_REFRESH}


@pytest.mark.parametrize("text", ["Production", "PRODUCTION", " production "])
def test_node_env_production_in_any_case_is_production(tmp_path: Path, text: str) -> None:
    s = settings(tmp_path, NODE_ENV=text, **PRODUCTION_SECRETS)
    assert (s.node_env, s.production, s.payments_sandbox) == ("production", True, False)


@pytest.mark.parametrize("text", ["Development", "TEST", "test"])
def test_node_env_development_and_test_in_any_case(tmp_path: Path, text: str) -> None:
    assert settings(tmp_path, NODE_ENV=text).node_env == text.lower()


@pytest.mark.parametrize("text", ["prod", "dev", "staging", "productio n", "1"])
def test_an_unknown_node_env_stops_the_start(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, NODE_ENV=text, **PRODUCTION_SECRETS)
    assert "NODE_ENV" in str(refused.value)
    assert "development, test, production" in str(refused.value)


@pytest.mark.parametrize("text", ["true", "1", "yes", "TRUE"])
def test_production_refuses_the_sandbox_payments(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, NODE_ENV="production", PAYMENTS_SANDBOX=text, **PRODUCTION_SECRETS)
    assert "PAYMENTS_SANDBOX" in str(refused.value)


def test_the_sandbox_stays_available_in_development_and_test(tmp_path: Path) -> None:
    assert settings(tmp_path).payments_sandbox is True
    assert settings(tmp_path, NODE_ENV="test").payments_sandbox is True
    assert settings(tmp_path, PAYMENTS_SANDBOX="false").payments_sandbox is False


@pytest.mark.parametrize(
    "weak",
    [
        "a" * 32,
        "a" * 64,
        "ab" * 20,
        "password1234" * 4,
        "0123456789" * 4,  # ten different characters, said four times
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefghijklmnop",  # mostly one character
        "change-me-to-48-random-characters-for-access-tokens",  # .env.example's
        "YOUR-SECRET-KEY",
    ],
)
def test_production_refuses_secrets_that_look_weak_not_only_short(
    tmp_path: Path, weak: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, NODE_ENV="production", JWT_SECRET=weak, JWT_REFRESH_SECRET=STRONG)
    assert "JWT_SECRET" in str(refused.value)
    assert weak not in str(refused.value)  # a secret is never repeated back


def test_the_env_example_secrets_are_refused_in_production(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(
            {"SORA2_VAR_DIR": str(tmp_path / "var"), "NODE_ENV": "production"}, dotenv=example
        )
    assert "JWT_SECRET" in str(refused.value) and "JWT_REFRESH_SECRET" in str(refused.value)


def test_random_secrets_pass(tmp_path: Path) -> None:
    import secrets

    for _ in range(50):
        access, refresh = secrets.token_urlsafe(32), secrets.token_hex(16)
        s = settings(tmp_path, NODE_ENV="production", JWT_SECRET=access, JWT_REFRESH_SECRET=refresh)
        assert (s.jwt_secret, s.jwt_refresh_secret) == (access, refresh)


def test_secrets_never_show_in_a_repr(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        STRIPE_SECRET_KEY="sk_test_hidden",
        STRIPE_WEBHOOK_SECRET="whsec_hidden",
        DATABASE_URL="postgresql://u:hunter2@db/x",
        **PRODUCTION_SECRETS,
    )
    shown = repr(s) + str(s)
    for secret in (STRONG, STRONG_REFRESH, "sk_test_hidden", "whsec_hidden", "hunter2"):
        assert secret not in shown


# --- .env as a shell would read it ------------------------------------------------------


def test_dotenv_comments_quotes_and_lists(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment line\n"
        "PORT=4000   # an inline comment\n"
        'FRONTEND_URL="https://quoted.example"  # after quotes too\n'
        "SMTP_URL='smtp://u:p#ss@mail:25'\n"  # a # inside quotes is the value's
        "TRUSTED_PROXIES=10.0.0.0/8, 127.0.0.1\n"
        'VIDEO_PROVIDER_MODEL="two words"\n'
        "REDIS_HOST=\n"  # empty: the default
        "export VIDEO_JOBS=OFF\n"
    )
    s = Settings.from_env({"SORA2_VAR_DIR": str(tmp_path / "var")}, dotenv=dotenv)
    assert s.port == 4000
    assert s.frontend_url == "https://quoted.example"
    assert s.smtp_url == "smtp://u:p#ss@mail:25"
    assert s.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert s.video_provider_model == "two words"
    assert s.redis_host is None
    assert s.video_jobs == "off"


def test_a_list_may_be_written_as_json(tmp_path: Path) -> None:
    s = settings(tmp_path, TRUSTED_PROXIES='["10.0.0.0/8", "::1"]')
    assert s.trusted_proxies == ("10.0.0.0/8", "::1")
