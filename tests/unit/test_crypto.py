"""KeyRing MACs across a key rotation (crypto.py)."""

from __future__ import annotations

import hashlib
import hmac

from authserver.crypto import KeyRing, SecretKey

OLD = SecretKey(kid="k1", key=b"\x01" * 32)
NEW = SecretKey(kid="k2", key=b"\x02" * 32)
MESSAGE = b"otp/v1\0sms\0example"


def test_macs_has_one_mac_per_key_current_first() -> None:
    before, after = KeyRing([OLD]), KeyRing([NEW, OLD])
    macs = after.macs(MESSAGE)
    assert macs == [after.mac(MESSAGE), before.mac(MESSAGE)]
    assert macs[0] != macs[1]
    assert before.macs(MESSAGE) == [before.mac(MESSAGE)]


def test_mac_keys_are_derived_not_the_aes_keys() -> None:
    ring = KeyRing([OLD])
    assert ring.mac(MESSAGE) != hmac.new(OLD.key, MESSAGE, hashlib.sha256).digest()
