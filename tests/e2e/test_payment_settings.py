"""Alipay and WeChat Pay settings: all or nothing, keys in the shapes operators hold them,
and a half-configured provider stops `sora2 serve` with a message that names what is missing."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sora2.config import ConfigError, Settings
from tests.support.rsa_keys import pair
from tests.support.server_process import SORA2, production_env

V3_KEY = "0123456789abcdefghijABCDEFGHIJ+/"


def settings(tmp_path: Path, **env: str) -> Settings:
    base = {"SORA2_VAR_DIR": str(tmp_path / "var")}
    return Settings.from_env({**base, **env}, dotenv=tmp_path / "absent.env")


def alipay_env(**changes: str) -> dict[str, str]:
    keys = pair("settings-alipay")
    return {
        "ALIPAY_APP_ID": "2021000000000001",
        "ALIPAY_PRIVATE_KEY": keys.private_pem,
        "ALIPAY_PUBLIC_KEY": keys.public_pem,
    } | changes


def wechat_env(**changes: str) -> dict[str, str]:
    keys = pair("settings-wechat")
    return {
        "WECHAT_MCH_ID": "1900000109",
        "WECHAT_APP_ID": "wxd678efh567hg6787",
        "WECHAT_API_V3_KEY": V3_KEY,
        "WECHAT_PRIVATE_KEY": keys.private_pem,
        "WECHAT_CERT_SERIAL": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "WECHAT_PLATFORM_PUBLIC_KEY": keys.public_pem,
        "WECHAT_PLATFORM_KEY_ID": "PUB_KEY_ID_0119000001092026120100000000000001",
    } | changes


def test_no_provider_settings_means_no_provider(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert not s.alipay_configured and not s.wechat_configured
    assert s.alipay_gateway == "https://openapi.alipay.com/gateway.do"
    assert s.wechat_api_base == "https://api.mch.weixin.qq.com"


def test_complete_settings_configure_both_and_never_show_a_key(tmp_path: Path) -> None:
    s = settings(tmp_path, **alipay_env(), **wechat_env())
    assert s.alipay_configured and s.wechat_configured
    shown = repr(s)
    assert "PRIVATE" not in shown and V3_KEY not in shown and "PUBLIC KEY" not in shown


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"ALIPAY_APP_ID": "2021000000000001"},
            "ALIPAY_PRIVATE_KEY, ALIPAY_PUBLIC_KEY are missing",
        ),
        (alipay_env(ALIPAY_PUBLIC_KEY=""), "ALIPAY_PUBLIC_KEY is missing"),
        (wechat_env(WECHAT_PLATFORM_KEY_ID=""), "WECHAT_PLATFORM_KEY_ID is missing"),
        (wechat_env(WECHAT_CERT_SERIAL="  "), "WECHAT_CERT_SERIAL is missing"),
        (wechat_env(WECHAT_API_V3_KEY="too-short"), "WECHAT_API_V3_KEY must be the 32 ASCII"),
        (wechat_env(WECHAT_API_V3_KEY="密" * 32), "WECHAT_API_V3_KEY must be the 32 ASCII"),
        (wechat_env(WECHAT_PRIVATE_KEY="not a key at all"), "WECHAT_PRIVATE_KEY is not"),
        (alipay_env(ALIPAY_PRIVATE_KEY="/nowhere/app.pem"), "ALIPAY_PRIVATE_KEY is neither"),
        (
            alipay_env(ALIPAY_PUBLIC_KEY=pair("settings-alipay").private_pem),
            "ALIPAY_PUBLIC_KEY is not an RSA public key",
        ),
        (
            wechat_env(WECHAT_API_BASE="https://api.mch.weixin.qq.com/v3"),
            "WECHAT_API_BASE must be a base URL without a path",
        ),
        (alipay_env(ALIPAY_GATEWAY="openapi.alipay.com"), "ALIPAY_GATEWAY must be an http(s) URL"),
    ],
)
def test_a_provider_that_cannot_work_is_a_config_error(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, **env)
    assert named in str(refused.value)


def test_keys_are_taken_as_pem_text_files_or_the_consoles_base64(tmp_path: Path) -> None:
    keys = pair("settings-alipay")
    der = keys.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, as Alipay's key tool saves it
        serialization.NoEncryption(),
    )
    public_der = keys.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "app_private_key.pem"
    key_file.write_text(keys.pkcs1_pem)
    for private, public in [
        (keys.private_pem, keys.public_pem),  # PKCS#8 PEM
        (keys.pkcs1_pem.replace("\n", "\\n"), keys.public_pem),  # one .env line
        (str(key_file), keys.public_pem),  # a file
        (base64.b64encode(der).decode(), base64.b64encode(public_der).decode()),  # bare base64
    ]:
        s = settings(tmp_path, **alipay_env(ALIPAY_PRIVATE_KEY=private, ALIPAY_PUBLIC_KEY=public))
        assert s.alipay_configured


def test_sora2_serve_refuses_a_half_configured_provider_and_says_why(tmp_path: Path) -> None:
    env = production_env(tmp_path, WECHAT_MCH_ID="1900000109", WECHAT_APP_ID="wx0")
    run = subprocess.run(
        [str(SORA2), "serve", "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "WeChat Pay is half configured" in run.stderr
    assert "WECHAT_API_V3_KEY" in run.stderr and "Traceback" not in run.stderr
