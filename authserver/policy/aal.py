"""Authenticator assurance levels (DESIGN §4, NIST SP 800-63B) from completed proofs.

* AAL1: one factor.
* AAL2: two factors of different classes, or a user-verified WebAuthn assertion from a
  synced credential (BE=1) — the credential is "something you have" unlocked by
  "something you are/know".
* AAL3: a user-verified WebAuthn assertion from a device-bound credential (BE=0).
"""

from __future__ import annotations

from collections.abc import Iterable

from authserver.methods.base import SECOND_FACTOR_ORDER, Proof
from authserver.store.repositories.accounts import EnrolledFactors


def combine(proofs: Iterable[Proof]) -> tuple[int, list[str]]:
    """The AAL and the sorted ``amr`` that a set of proofs establishes together."""
    # An email code (risk check) is not an authenticator: it adds neither amr nor assurance.
    proofs = [p for p in proofs if p.factor_class != "email"]
    if not proofs:
        return 0, []
    amr = sorted({value for p in proofs for value in p.amr})
    aal = max(p.aal for p in proofs)
    methods = {p.method for p in proofs}
    classes = {p.factor_class for p in proofs}
    if len(methods) >= 2 and (len(classes) >= 2 or "webauthn" in methods):
        aal = max(aal, 2)
    return aal, amr


def required_login_aal(factors: EnrolledFactors) -> int:
    """An account that has two ways to sign in must use two; otherwise one suffices."""
    return 2 if factors.count >= 2 else 1


def second_factor_methods(factors: EnrolledFactors) -> list[str]:
    """Methods a login flow may still ask for after the first step, in preference order."""
    return [name for name in SECOND_FACTOR_ORDER if getattr(factors, name)]


def after_step_up(session_aal: int, session_amr: list[str], proof: Proof) -> tuple[int, list[str]]:
    """The AAL and ``amr`` of a session once a step-up proof is folded in.

    The AAL only ever rises. It rises to 2 when the proof is a *different* authenticator
    from those that made the session (an ``amr`` value it did not have); the same security
    key asserted twice is still one factor. A proof that is AAL2/3 by itself (a verified
    passkey) brings its own level.
    """
    new_values = set(proof.amr) - set(session_amr) - {"user"}
    aal = max(session_aal, proof.aal, 2 if new_values and session_amr else session_aal)
    return aal, sorted(set(session_amr) | set(proof.amr))
