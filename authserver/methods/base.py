"""The small interface every factor sits behind, and the registry of factors.

A factor *proves* something: its ``complete`` step returns a :class:`Proof` naming the
RFC 8176 ``amr`` values it establishes and the AAL it reaches on its own. Flows combine
proofs into a session (policy/aal.py); they never need to know how a factor works.
Adding a factor means one module, its routes, and one line in ``FACTORS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Proof:
    """What one successful factor check established."""

    method: str
    amr: frozenset[str]
    aal: int = 1
    factor_class: str = "know"  # know | have | are: distinct classes make multi-factor


@dataclass(frozen=True, kw_only=True)
class FactorInfo:
    """Static facts about a factor: its name in flows/headers and whether it may serve as
    the second step of a login (email codes may not: NIST 800-63B does not count email)."""

    name: str
    amr: tuple[str, ...]
    second_factor: bool
    accepts_header_code: bool = False


FACTORS: dict[str, FactorInfo] = {
    "password": FactorInfo(name="password", amr=("pwd",), second_factor=False),
    "webauthn": FactorInfo(name="webauthn", amr=("hwk", "swk", "user"), second_factor=True),
    "totp": FactorInfo(name="totp", amr=("otp",), second_factor=True, accepts_header_code=True),
    "sms": FactorInfo(name="sms", amr=("sms",), second_factor=True, accepts_header_code=True),
    "recovery_code": FactorInfo(name="recovery_code", amr=("rc",), second_factor=True, accepts_header_code=True),
}

SECOND_FACTOR_ORDER = ("webauthn", "totp", "sms", "recovery_code")
