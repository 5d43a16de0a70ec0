"""RSA key pairs the tests generate, as PEM text (the shapes operators paste into settings)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    private_key: rsa.RSAPrivateKey
    private_pem: str  # PKCS#8
    pkcs1_pem: str  # the same key as "BEGIN RSA PRIVATE KEY"
    public_pem: str  # SubjectPublicKeyInfo

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


def new_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nothing = serialization.NoEncryption()
    pem = serialization.Encoding.PEM
    return KeyPair(
        key,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, nothing).decode(),
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, nothing).decode(),
        key.public_key()
        .public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


@cache
def pair(name: str) -> KeyPair:
    """One generated pair per name and test run (generation takes a while)."""
    return new_pair()
