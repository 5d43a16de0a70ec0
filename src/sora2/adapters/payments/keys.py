"""RSA keys as operators hold them: PEM text, a file path, or the bare base64 that Alipay's
and WeChat's consoles hand out; private keys PKCS#1 or PKCS#8, public keys SubjectPublicKeyInfo.

One place parses them, so a key that cannot work stops start-up naming its variable
(ValueError here, ConfigError at the composition root) instead of failing the first payment.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _pem_or_der(value: str, name: str) -> bytes:
    text = value.strip().replace("\\n", "\n")  # one-line .env values carry literal \n
    if "-----BEGIN" in text:
        return text.encode()
    path = Path(text).expanduser()
    try:
        if path.is_file():
            return path.read_bytes()
    except OSError:  # not a readable path (too long for one, say): base64 then
        pass
    try:  # the consoles' one-line base64 (DER without PEM armour)
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{name} is neither PEM text, a readable key file nor base64 DER"
        ) from None


def load_private_key(value: str, name: str) -> rsa.RSAPrivateKey:
    raw = _pem_or_der(value, name)
    loader = (
        serialization.load_pem_private_key
        if raw.lstrip().startswith(b"-----")
        else serialization.load_der_private_key
    )
    try:
        key = loader(raw, password=None)
    except (ValueError, TypeError):
        # cryptography reads PKCS#8 and, in PEM, PKCS#1 ("BEGIN RSA PRIVATE KEY"); a bare
        # PKCS#1 DER gets its PEM armour so the same loader takes it
        try:
            armoured = b"-----BEGIN RSA PRIVATE KEY-----\n" + base64.encodebytes(raw)
            key = serialization.load_pem_private_key(
                armoured + b"-----END RSA PRIVATE KEY-----\n", password=None
            )
        except (ValueError, TypeError):
            raise ValueError(f"{name} is not an unencrypted RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{name} is not an RSA private key")
    return key


def load_public_key(value: str, name: str) -> rsa.RSAPublicKey:
    raw = _pem_or_der(value, name)
    try:
        if raw.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(raw)
        else:
            key = serialization.load_der_public_key(raw)
    except (ValueError, TypeError):
        raise ValueError(f"{name} is not an RSA public key (SubjectPublicKeyInfo)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{name} is not an RSA public key")
    return key


def sign_sha256(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: what both Alipay's RSA2 and WeChat Pay v3 use."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify_sha256(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # bad base64, wrong length, wrong signature: all the same to us
        return False
    return True
