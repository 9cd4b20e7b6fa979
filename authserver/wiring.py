"""Builds the object graph of one app: context, flows and factors. ``create_app`` calls
this; tests build two to play two replicas sharing one database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authserver.clock import Clock, SystemClock
from authserver.context import AppContext
from authserver.crypto import KeyRing
from authserver.flows.accounts import AccountService
from authserver.flows.login import LoginService
from authserver.flows.sessions import SessionService
from authserver.flows.stepup import StepUpService
from authserver.flows.webauthn import WebAuthnService
from authserver.methods.email import EmailCodeFactor
from authserver.methods.recovery import RecoveryCodeFactor
from authserver.methods.sms import SmsFactor
from authserver.methods.totp import TotpFactor
from authserver.settings import Settings


@dataclass(kw_only=True)
class Services:
    ctx: AppContext
    sessions: SessionService
    login: LoginService
    accounts: AccountService
    stepup: StepUpService
    extra: dict[str, Any] = field(default_factory=dict)


def build_services(settings: Settings, *, clock: Clock | None = None, keyring: KeyRing | None = None) -> Services:
    ctx = AppContext.build(settings, clock=clock or SystemClock(), keyring=keyring)
    sessions = SessionService(db=ctx.db, clock=ctx.clock, settings=settings)
    login = LoginService(ctx, sessions)
    services = Services(ctx=ctx, sessions=sessions, login=login, accounts=AccountService(ctx, sessions),
                        stepup=StepUpService(ctx, login))
    # Factors beyond the password register here, one line each (they add themselves to
    # services.extra and, for typed codes, to login.code_factors).
    fallbacks = (TotpFactor.from_settings(settings), RecoveryCodeFactor.from_settings(settings),
                 SmsFactor.from_settings(settings))
    login.code_factors.extend(fallbacks)  # X-MFA-Code tries them in this order: totp, recovery_code, sms
    services.extra.update({factor.name: factor for factor in fallbacks})
    services.extra["webauthn"] = WebAuthnService(ctx, sessions=sessions, login=login, stepup=services.stepup)
    services.extra["email"] = EmailCodeFactor.from_settings(settings)  # risk checks only, never a factor
    return services

