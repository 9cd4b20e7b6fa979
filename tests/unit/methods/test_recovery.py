"""Recovery codes: format, entropy, forgiving input, and the salted Argon2id at rest."""

from __future__ import annotations

import math
import re
import uuid

from authserver.methods.recovery import (
    ALPHABET,
    BITS_PER_CODE,
    MAX_MEMORY_KIB,
    MAX_TIME_COST,
    RecoveryCodeFactor,
    generate_code,
    normalize_code,
)
from tests.conftest import make_settings

CODE_SHAPE = re.compile(r"^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$")


def test_codes_carry_at_least_fifty_bits() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert BITS_PER_CODE == 10 * math.log2(len(ALPHABET)) >= 50


def test_codes_look_like_xxxxx_xxxxx_from_an_unambiguous_alphabet() -> None:
    codes = [generate_code() for _ in range(2000)]
    assert all(CODE_SHAPE.match(c) for c in codes)
    assert not set("ilou") & set("".join(codes))
    assert len(set(codes)) == len(codes)
    assert set("".join(codes).replace("-", "")) == set(ALPHABET)  # every symbol is used


def test_typed_codes_are_normalized() -> None:
    assert normalize_code("abcde-12345") == "abcde12345"
    assert normalize_code(" ABCDE 12345 ") == "abcde12345"
    assert normalize_code("abcde12345") == "abcde12345"
    assert normalize_code("0O1IL-abcde") == "00111abcde"  # o reads as 0, i and l as 1
    for bad in ("abcde-1234", "abcde-123456", "abcdu-12345", "abcde_12345", "", "٠١٢٣٤-abcde"):
        assert normalize_code(bad) is None, bad


def test_hash_is_per_account_and_deterministic() -> None:
    factor = RecoveryCodeFactor(count=10, time_cost=1, memory_kib=8192)
    a, b = uuid.uuid4(), uuid.uuid4()
    h = factor.hash_code(a, "abcde12345")
    assert len(h) == 32 and h == factor.hash_code(a, "abcde12345")
    assert h != factor.hash_code(b, "abcde12345")
    assert h != factor.hash_code(a, "abcde12346")
    assert b"abcde12345" not in h


def test_hash_cost_is_capped_for_a_fifty_bit_secret(tmp_path) -> None:
    heavy = RecoveryCodeFactor(count=10, time_cost=3, memory_kib=65536)
    assert (heavy.time_cost, heavy.memory_kib) == (MAX_TIME_COST, MAX_MEMORY_KIB)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/x.db", tmp_path / "o.jsonl", recovery_code_count=12)
    factor = RecoveryCodeFactor.from_settings(settings)
    assert factor.count == 12 and factor.time_cost == 1 and factor.memory_kib == 8192
