"""Read-only summary of an account's non-WebAuthn factors for ``GET /me/credentials``.

The TOTP, phone and recovery-code tables belong to their own factor modules; this file
only reads the few columns the credential list shows, so that listing stays one request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import Phone, RecoveryCode, TotpSecret
from authserver.store.models.base import table_of

_T = table_of(TotpSecret)
_P = table_of(Phone)
_R = table_of(RecoveryCode)


@dataclass(frozen=True, kw_only=True)
class PhoneSummary:
    id: uuid.UUID
    number: str
    verified: bool


@dataclass(frozen=True, kw_only=True)
class FactorSummary:
    totp_created_at: datetime | None
    phones: list[PhoneSummary]
    recovery_codes_left: int


async def summarize(conn: AsyncConnection, account_id: uuid.UUID) -> FactorSummary:
    totp = await conn.scalar(select(_T.c.created_at).where(_T.c.account_id == account_id))
    phones = (await conn.execute(select(_P.c.id, _P.c.number, _P.c.verified_at)
                                 .where(_P.c.account_id == account_id).order_by(_P.c.created_at))).all()
    left = await conn.scalar(select(func.count()).select_from(_R)
                             .where(_R.c.account_id == account_id, _R.c.used_at.is_(None)))
    return FactorSummary(totp_created_at=totp,
                         phones=[PhoneSummary(id=p.id, number=p.number, verified=p.verified_at is not None)
                                 for p in phones],
                         recovery_codes_left=int(left or 0))

