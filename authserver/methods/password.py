"""Passwords: Argon2id hashes (RFC 9106), rehashed on login when parameters change.

Verification of an unknown username still runs one hash so that response time does not
tell an attacker which usernames exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from authserver.errors import ValidationFailed
from authserver.methods.base import Proof

PASSWORD_PROOF = Proof(method="password", amr=frozenset({"pwd"}), aal=1, factor_class="know")
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, kw_only=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced (parameters changed)


class PasswordMethod:
    name = "password"

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, min_length: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self.min_length = min_length
        self._dummy_hash = self._hasher.hash("authserver-dummy-password")

    def validate_new(self, password: str, *, username: str) -> None:
        if len(password) < self.min_length:
            raise ValidationFailed(f"the password needs at least {self.min_length} characters", field="password")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise ValidationFailed("the password is too long", field="password")
        if password.casefold() == username.casefold():
            raise ValidationFailed("the password may not equal the username", field="password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> PasswordCheck:
        if stored_hash is None:
            self._burn(password)
            return PasswordCheck(ok=False)
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return PasswordCheck(ok=False)
        new_hash = self._hasher.hash(password) if self._hasher.check_needs_rehash(stored_hash) else None
        return PasswordCheck(ok=True, new_hash=new_hash)

    def _burn(self, password: str) -> None:
        try:
            self._hasher.verify(self._dummy_hash, password)
        except VerificationError:
            pass
