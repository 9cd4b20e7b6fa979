"""Every controller, in one place: one line per area."""

from __future__ import annotations

from typing import Any

from authserver.api.accounts import AccountController
from authserver.api.admin import AdminController
from authserver.api.factors import FactorController
from authserver.api.login import LoginController
from authserver.api.metrics import MetricsController
from authserver.api.mfa import MfaController
from authserver.api.service import ServiceController
from authserver.api.session import SessionController
from authserver.api.stepup import StepUpController
from authserver.api.webauthn import (
    AdminCredentialsController,
    CredentialsController,
    PasskeyController,
    WellKnownWebAuthnController,
)

# mounted under /api/v1
API_CONTROLLERS: list[Any] = [
    AccountController,
    LoginController,
    SessionController,
    AdminController,
    MfaController,
    StepUpController,
    FactorController,
    PasskeyController,
    CredentialsController,
    AdminCredentialsController,
]

# mounted at the root (service routes, /.well-known)
ROOT_CONTROLLERS: list[Any] = [
    ServiceController,
    MetricsController,
    WellKnownWebAuthnController,
]
