"""Step-up freshness (DESIGN §4, RFC 9470): sensitive actions need a recent second factor.

An account with no second factor yet can still enrol one: for it, a recent primary
authentication is enough.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from authserver.errors import StepUpRequired
from authserver.policy.aal import second_factor_methods
from authserver.store.repositories.accounts import EnrolledFactors


def step_up_challenge(*, window: int, methods: list[str], acr: str = "aal2") -> StepUpRequired:
    header = f'Bearer error="insufficient_user_authentication", max_age="{window}", acr_values="{acr}"'
    return StepUpRequired(headers={"WWW-Authenticate": header}, extra={"methods": methods, "max_age": window,
                                                                       "acr_values": acr})


def is_fresh(*, auth_time: datetime, last_mfa_at: datetime | None, factors: EnrolledFactors,
             now: datetime, window: int) -> bool:
    limit = now - timedelta(seconds=window)
    if second_factor_methods(factors):
        return last_mfa_at is not None and last_mfa_at >= limit
    # No second factor (yet, or any more): a recent sign-in or a recent factor both count.
    return max(auth_time, last_mfa_at or auth_time) >= limit


def require_fresh(*, auth_time: datetime, last_mfa_at: datetime | None, factors: EnrolledFactors,
                  now: datetime, window: int) -> None:
    if not is_fresh(auth_time=auth_time, last_mfa_at=last_mfa_at, factors=factors, now=now, window=window):
        methods = second_factor_methods(factors) or ["login"]
        raise step_up_challenge(window=window, methods=methods)
