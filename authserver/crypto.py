"""Secrets at rest and opaque tokens.

Sealed values are AES-256-GCM ciphertexts that name the key that made them
(``v1.<kid>.<nonce+ciphertext>``), so several keys can be live during a rotation and
``authserver rotate-keys`` can re-seal everything under the newest one without downtime.
Tokens (sessions, flows) are 256-bit random strings; only their SHA-256 is stored, so a
database leak does not hand out live sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

SEAL_VERSION = "v1"
_NONCE_BYTES = 12


class KeyError_(Exception):
    """A sealed value names a key we do not hold, or the configuration is unusable."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (DESIGN §6): URL alphabet only, no padding, no whitespace."""
    if not isinstance(text, str) or not _B64URL_ALPHABET.issuperset(text) or len(text) % 4 == 1:
        raise ValueError("not strict base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_token(prefix: str = "") -> str:
    """A fresh 256-bit opaque token; the prefix makes leaked tokens easy to scan for."""
    return prefix + b64url_encode(secrets.token_bytes(32))


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def constant_time_equals(a: bytes | str, b: bytes | str) -> bool:
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


@dataclass(frozen=True, kw_only=True)
class SecretKey:
    kid: str
    key: bytes

    def __repr__(self) -> str:
        return f"SecretKey(kid={self.kid!r}, key=<hidden>)"


class KeyRing:
    """The live AES-256-GCM keys; the first one seals, all of them open."""

    def __init__(self, keys: list[SecretKey]) -> None:
        if not keys:
            raise KeyError_("at least one secret key is needed")
        for k in keys:
            if len(k.key) != 32:
                raise KeyError_(f"secret key {k.kid!r} must be 32 bytes (AES-256)")
            if not k.kid or "." in k.kid or ":" in k.kid or "," in k.kid:
                raise KeyError_(f"secret key id {k.kid!r} may not be empty or hold '.', ':' or ','")
        self._keys = {k.kid: k for k in keys}
        self.current = keys[0]
        self._mac_keys = [_derive_mac_key(k) for k in keys]
        self._mac_key = self._mac_keys[0]

    def __repr__(self) -> str:
        return f"KeyRing(kids={list(self._keys)!r})"

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: bytes, *, aad: bytes) -> str:
        """Encrypt under the current key; ``aad`` binds the value to its row and column."""
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(self.current.key).encrypt(nonce, plaintext, aad)
        return f"{SEAL_VERSION}.{self.current.kid}.{b64url_encode(nonce + ciphertext)}"

    def open(self, sealed: str, *, aad: bytes) -> bytes:
        try:
            version, kid, body = sealed.split(".", 2)
        except ValueError as exc:
            raise KeyError_("malformed sealed value") from exc
        if version != SEAL_VERSION:
            raise KeyError_(f"unknown seal version {version!r}")
        key = self._keys.get(kid)
        if key is None:
            raise KeyError_(f"sealed under key {kid!r}, which is not configured")
        raw = b64url_decode(body)
        return AESGCM(key.key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)

    def sealed_kid(self, sealed: str) -> str:
        return sealed.split(".", 2)[1]

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 under a key derived from the current secret: for one-time codes at rest."""
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()

    def macs(self, message: bytes) -> list[bytes]:
        """``message``'s MAC under every configured key, the current one first.

        A MAC stored before ``rotate-keys`` was made under what is now an older key; checking
        against all of them keeps codes already sent working through a rotation, just as
        :meth:`open` still opens values sealed under older keys.
        """
        return [hmac.new(key, message, hashlib.sha256).digest() for key in self._mac_keys]


def _derive_mac_key(secret: SecretKey) -> bytes:
    """A MAC key of its own per secret, so MACs and AES-GCM never share key material."""
    return hmac.new(secret.key, b"authserver/mac-key/v1", hashlib.sha256).digest()


def parse_keys(spec: str) -> list[SecretKey]:
    """Parse ``kid:base64key,kid2:base64key`` (standard or URL-safe base64)."""
    keys: list[SecretKey] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep:
            raise KeyError_("each secret key must be written kid:base64key")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), altchars=b"-_" if "-" in b64 or "_" in b64 else None)
        except ValueError as exc:
            raise KeyError_(f"secret key {kid!r} is not base64") from exc
        keys.append(SecretKey(kid=kid.strip(), key=raw))
    return keys


def format_keys(keys: list[SecretKey]) -> str:
    return ",".join(f"{k.kid}:{base64.b64encode(k.key).decode()}" for k in keys)


def generate_key(kid: str | None = None) -> SecretKey:
    return SecretKey(kid=kid or "k" + secrets.token_hex(4), key=secrets.token_bytes(32))


def load_or_create_key_file(path: Path) -> list[SecretKey]:
    """Development keys: read them from ``path``, creating the file (mode 0600) if missing."""
    if path.exists():
        return parse_keys(path.read_text().strip())
    keys = [generate_key()]
    write_key_file(path, keys)
    log.warning(
        "AUTHSERVER_SECRET_KEYS is not set: generated a development key into %s. "
        "Set AUTHSERVER_SECRET_KEYS in production.",
        path,
    )
    return keys


def write_key_file(path: Path, keys: list[SecretKey]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(format_keys(keys) + "\n")
    os.replace(tmp, path)
