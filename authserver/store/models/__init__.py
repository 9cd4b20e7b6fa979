"""Every table, one model per file; importing this package registers them on ``Base.metadata``."""

from authserver.store.models.account import Account
from authserver.store.models.account_country import AccountCountry
from authserver.store.models.base import Base
from authserver.store.models.device import Device
from authserver.store.models.flow import Flow
from authserver.store.models.lockout import Lockout
from authserver.store.models.otp_code import OtpCode
from authserver.store.models.outbox import OutboxMessage
from authserver.store.models.phone import Phone
from authserver.store.models.recovery_code import RecoveryCode
from authserver.store.models.security_event import SecurityEvent
from authserver.store.models.session import Session
from authserver.store.models.totp_secret import TotpSecret
from authserver.store.models.webauthn_credential import WebAuthnCredential

__all__ = [
    "Account", "AccountCountry", "Base", "Device", "Flow", "Lockout", "OtpCode", "OutboxMessage", "Phone",
    "RecoveryCode", "SecurityEvent", "Session", "TotpSecret", "WebAuthnCredential",
]
