"""TOTP arithmetic against RFC 6238 Appendix B and Debian's oathtool (an independent
implementation in C), plus the window, URI and QR helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from authserver.methods.totp import (
    SEED_BYTES,
    TotpFactor,
    TotpParams,
    base32,
    code_at,
    matching_step,
    otpauth_uri,
    qr_svg,
    time_step,
)
from authserver.store.repositories.accounts import AccountRow

# RFC 6238 Appendix B: the seed is "1234567890" repeated to the hash's output length.
SEEDS = {"SHA1": b"12345678901234567890", "SHA256": b"12345678901234567890123456789012",
         "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234"}
APPENDIX_B = [  # (unix time, algorithm, 8-digit TOTP)
    (59, "SHA1", "94287082"), (59, "SHA256", "46119246"), (59, "SHA512", "90693936"),
    (1111111109, "SHA1", "07081804"), (1111111109, "SHA256", "68084774"), (1111111109, "SHA512", "25091201"),
    (1111111111, "SHA1", "14050471"), (1111111111, "SHA256", "67062674"), (1111111111, "SHA512", "99943326"),
    (1234567890, "SHA1", "89005924"), (1234567890, "SHA256", "91819424"), (1234567890, "SHA512", "93441116"),
    (2000000000, "SHA1", "69279037"), (2000000000, "SHA256", "90698825"), (2000000000, "SHA512", "38618901"),
    (20000000000, "SHA1", "65353130"), (20000000000, "SHA256", "77737706"), (20000000000, "SHA512", "47863826"),
]


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


@pytest.mark.parametrize(("unix", "algorithm", "expected"), APPENDIX_B)
def test_rfc6238_appendix_b(unix: int, algorithm: str, expected: str) -> None:
    params = TotpParams(algorithm=algorithm, digits=8, period=30)
    assert len(SEEDS[algorithm]) == SEED_BYTES[algorithm]
    assert code_at(SEEDS[algorithm], step=time_step(at(unix), 30), params=params) == expected
    # and the verifier finds that very step
    assert matching_step(SEEDS[algorithm], expected, params=params, now=at(unix), window=1) == unix // 30


def test_six_digit_codes_are_the_last_six_of_eight() -> None:
    """RFC 4226 §5.3: Digit = Snum mod 10^Digit, so 6 digits are the 8-digit code's tail."""
    six = code_at(SEEDS["SHA1"], step=time_step(at(59), 30), params=TotpParams())
    assert six == "287082"


def oathtool(*args: str) -> str:
    exe = shutil.which("oathtool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("oathtool is required when CI=true (.ci/run installs oathtool)")
        pytest.skip("oathtool is not installed (apt-get install oathtool); set CI=true to make this fatal")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize(("algorithm", "digits"), [("SHA1", 6), ("SHA256", 8), ("SHA512", 8), ("SHA1", 8)])
def test_codes_agree_with_oathtool(algorithm: str, digits: int) -> None:
    factor = TotpFactor(params=TotpParams(algorithm=algorithm, digits=digits), window=1, issuer="t")
    secret = factor.new_secret()
    assert len(secret) == SEED_BYTES[algorithm]
    when = 1_700_000_000
    expected = oathtool(f"--totp={algorithm}", f"--digits={digits}", "--time-step-size=30s", f"--now=@{when}",
                        "--base32", base32(secret))
    assert code_at(secret, step=when // 30, params=TotpParams(algorithm=algorithm, digits=digits)) == expected


def test_window_is_one_step_either_side() -> None:
    secret, params, now = SEEDS["SHA1"], TotpParams(), at(1_700_000_015)
    current = time_step(now, 30)
    for offset in (-1, 0, 1):
        code = code_at(secret, step=current + offset, params=params)
        assert matching_step(secret, code, params=params, now=now, window=1) == current + offset
    for offset in (-2, 2):
        code = code_at(secret, step=current + offset, params=params)
        assert matching_step(secret, code, params=params, now=now, window=1) is None
    assert matching_step(secret, "000000" if code_at(secret, step=current, params=params) != "000000" else "111111",
                         params=params, now=now, window=0) is None


def test_time_step_uses_whole_periods() -> None:
    assert time_step(at(59), 30) == 1
    assert time_step(at(60), 30) == 2
    assert time_step(at(60) - timedelta(microseconds=1), 30) == 1


def test_otpauth_uri_spells_out_every_parameter() -> None:
    uri = otpauth_uri(SEEDS["SHA256"], params=TotpParams(algorithm="SHA256", digits=8, period=60),
                      issuer="Acme Corp", account_name="al@ice")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert unquote(parts.path) == "/Acme Corp:al@ice"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"secret": base32(SEEDS["SHA256"]), "issuer": "Acme Corp", "algorithm": "SHA256",
                     "digits": "8", "period": "60"}
    assert "=" not in query["secret"]


def test_qr_code_is_standalone_svg() -> None:
    svg = qr_svg("otpauth://totp/a:b?secret=AAAA")
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "<path" in svg and "otpauth" not in svg  # the secret is drawn, not written


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        TotpParams(algorithm="MD5")
    with pytest.raises(ValueError):
        TotpParams(digits=5)
    with pytest.raises(ValueError):
        TotpParams(period=0)


def test_provisioning_repr_hides_the_secret() -> None:
    factor = TotpFactor(params=TotpParams(), window=1, issuer="t")
    secret = factor.new_secret()
    now = datetime.now(UTC)
    account = AccountRow(id=uuid.uuid4(), username="u", display_name="u", email=None, password_hash=None,
                         role="user", status="active", webauthn_user_id=None, created_at=now, updated_at=now,
                         password_changed_at=None)
    shown = factor.provisioning(secret, account=account)
    assert base32(secret) not in repr(shown)
    assert shown.secret_base32 == base32(secret)
