"""WebAuthn credentials: registration, use (counter, flags), lifetime, revocation, risk."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import WebAuthnCredential
from authserver.store.models.base import table_of

_W = table_of(WebAuthnCredential)


@dataclass(frozen=True, kw_only=True)
class CredentialRow:
    id: uuid.UUID
    account_id: uuid.UUID
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    aaguid: str
    kind: str
    attestation_format: str
    attestation_trust: str
    authenticator_name: str | None
    discoverable: bool | None
    backup_eligible: bool
    backup_state: bool
    user_verified: bool
    nickname: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    device_id: uuid.UUID | None
    clone_flagged_at: datetime | None
    at_risk: bool
    at_risk_reason: str | None

    def __repr__(self) -> str:
        return f"CredentialRow(id={self.id}, account_id={self.account_id}, kind={self.kind!r})"

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


def _row(row: Any) -> CredentialRow:
    return CredentialRow(**{c.name: row._mapping[c.name] for c in _W.columns})


def _usable(now: datetime) -> Any:
    return and_(_W.c.revoked_at.is_(None), _W.c.expires_at > now)


async def insert_credential(conn: AsyncConnection, *, account_id: uuid.UUID, credential_id: bytes,
                            public_key: bytes, sign_count: int, transports: list[str], aaguid: str, kind: str,
                            attestation_format: str, attestation_trust: str, authenticator_name: str | None,
                            discoverable: bool | None, backup_eligible: bool, backup_state: bool,
                            user_verified: bool, nickname: str | None, now: datetime, expires_at: datetime,
                            device_id: uuid.UUID | None) -> CredentialRow:
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "account_id": account_id, "credential_id": credential_id, "public_key": public_key,
        "sign_count": sign_count, "transports": transports, "aaguid": aaguid, "kind": kind,
        "attestation_format": attestation_format, "attestation_trust": attestation_trust,
        "authenticator_name": authenticator_name, "discoverable": discoverable, "backup_eligible": backup_eligible,
        "backup_state": backup_state, "user_verified": user_verified, "nickname": nickname, "created_at": now,
        "last_used_at": None, "expires_at": expires_at, "revoked_at": None, "revoked_reason": None,
        "device_id": device_id, "clone_flagged_at": None, "at_risk": False, "at_risk_reason": None,
    }
    await conn.execute(_W.insert().values(**values))
    return CredentialRow(**values)


async def get_by_credential_id(conn: AsyncConnection, credential_id: bytes) -> CredentialRow | None:
    row = (await conn.execute(select(_W).where(_W.c.credential_id == credential_id))).first()
    return _row(row) if row else None


async def get_for_account(conn: AsyncConnection, account_id: uuid.UUID, row_id: uuid.UUID) -> CredentialRow | None:
    row = (await conn.execute(select(_W).where(_W.c.id == row_id, _W.c.account_id == account_id))).first()
    return _row(row) if row else None


async def list_for_account(conn: AsyncConnection, account_id: uuid.UUID, *, include_revoked: bool = False,
                           usable_at: datetime | None = None) -> list[CredentialRow]:
    """The account's credentials, oldest first; ``usable_at`` keeps only live, unexpired ones."""
    stmt = select(_W).where(_W.c.account_id == account_id).order_by(_W.c.created_at, _W.c.id)
    if usable_at is not None:
        stmt = stmt.where(_usable(usable_at))
    elif not include_revoked:
        stmt = stmt.where(_W.c.revoked_at.is_(None))
    return [_row(r) for r in (await conn.execute(stmt)).all()]


async def count_usable(conn: AsyncConnection, account_id: uuid.UUID, now: datetime,
                       *, except_id: uuid.UUID | None = None) -> int:
    stmt = select(_W.c.id).where(_W.c.account_id == account_id, _usable(now))
    if except_id is not None:
        stmt = stmt.where(_W.c.id != except_id)
    return len((await conn.execute(stmt)).all())


async def record_use(conn: AsyncConnection, row_id: uuid.UUID, *, sign_count: int, backup_state: bool,
                     now: datetime) -> bool:
    """Store a verified assertion's counter (the value it reported, never stored + 1) and BS
    flag. The WHERE clause repeats the clone check (WebAuthn L3 §6.1.1) so that two replicas
    racing with assertions from copies of one key cannot both win; False means it lost."""
    counter_moves = _W.c.sign_count < sign_count if sign_count else _W.c.sign_count == 0
    res = await conn.execute(update(_W).where(_W.c.id == row_id, _W.c.revoked_at.is_(None), counter_moves)
                             .values(sign_count=sign_count, backup_state=backup_state, last_used_at=now))
    return bool(res.rowcount)


async def flag_clone(conn: AsyncConnection, row_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(update(_W).where(_W.c.id == row_id).values(clone_flagged_at=now, at_risk=True,
                                                                 at_risk_reason="possible_clone"))


async def revoke(conn: AsyncConnection, *, account_id: uuid.UUID, row_id: uuid.UUID, now: datetime,
                 reason: str) -> bool:
    res = await conn.execute(update(_W).where(_W.c.id == row_id, _W.c.account_id == account_id,
                                              _W.c.revoked_at.is_(None))
                             .values(revoked_at=now, revoked_reason=reason[:64]))
    return bool(res.rowcount)


async def rename(conn: AsyncConnection, *, account_id: uuid.UUID, row_id: uuid.UUID, nickname: str | None) -> bool:
    res = await conn.execute(update(_W).where(_W.c.id == row_id, _W.c.account_id == account_id,
                                              _W.c.revoked_at.is_(None)).values(nickname=nickname))
    return bool(res.rowcount)


async def delete_credential(conn: AsyncConnection, row_id: uuid.UUID) -> None:
    await conn.execute(delete(_W).where(_W.c.id == row_id))


async def list_unrevoked(conn: AsyncConnection) -> list[CredentialRow]:
    """Every live credential: what a freshly loaded metadata BLOB is checked against."""
    return [_row(r) for r in (await conn.execute(select(_W).where(_W.c.revoked_at.is_(None)))).all()]


async def set_authenticator_name(conn: AsyncConnection, ids: Iterable[uuid.UUID], name: str) -> None:
    id_list = list(ids)
    if id_list:
        await conn.execute(update(_W).where(_W.c.id.in_(id_list)).values(authenticator_name=name[:200]))


async def mark_at_risk(conn: AsyncConnection, row_id: uuid.UUID, reason: str) -> bool:
    res = await conn.execute(update(_W).where(_W.c.id == row_id, _W.c.at_risk.is_(False))
                             .values(at_risk=True, at_risk_reason=reason[:64]))
    return bool(res.rowcount)
