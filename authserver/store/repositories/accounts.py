from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.errors import UsernameTaken
from authserver.store.models import Account, Phone, RecoveryCode, TotpSecret, WebAuthnCredential
from authserver.store.models.base import table_of

_A = table_of(Account)


@dataclass(frozen=True, kw_only=True)
class AccountRow:
    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    password_hash: str | None
    role: str
    status: str
    webauthn_user_id: bytes | None
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None

    def __repr__(self) -> str:
        return f"AccountRow(id={self.id}, username={self.username!r})"


@dataclass(frozen=True, kw_only=True)
class EnrolledFactors:
    """Which factors an account can use right now (not revoked, not expired, confirmed)."""

    password: bool
    webauthn: bool
    totp: bool
    sms: bool
    recovery_code: bool

    def names(self) -> list[str]:
        return [n for n in ("password", "webauthn", "totp", "sms", "recovery_code") if getattr(self, n)]

    @property
    def count(self) -> int:
        return len(self.names())


def _account(row: Any) -> AccountRow:
    return AccountRow(**{c.name: row._mapping[c.name] for c in _A.columns})


def _factor_columns(account_id_col: Any, now: datetime) -> list[Any]:
    w = table_of(WebAuthnCredential).c
    return [
        exists().where(w.account_id == account_id_col, w.revoked_at.is_(None), w.expires_at > now)
        .label("f_webauthn"),
        exists().where(table_of(TotpSecret).c.account_id == account_id_col).label("f_totp"),
        exists().where(table_of(Phone).c.account_id == account_id_col, table_of(Phone).c.verified_at.is_not(None))
        .label("f_sms"),
        exists().where(table_of(RecoveryCode).c.account_id == account_id_col, table_of(RecoveryCode).c.used_at.is_(None))
        .label("f_recovery_code"),
    ]


def _factors(row: Any) -> EnrolledFactors:
    m = row._mapping
    return EnrolledFactors(
        password=m["password_hash"] is not None,
        webauthn=bool(m["f_webauthn"]),
        totp=bool(m["f_totp"]),
        sms=bool(m["f_sms"]),
        recovery_code=bool(m["f_recovery_code"]),
    )


async def insert_account(
    conn: AsyncConnection, *, username: str, display_name: str, email: str | None,
    password_hash: str | None, now: datetime, role: str = "user", webauthn_user_id: bytes | None = None,
    account_id: uuid.UUID | None = None,
) -> AccountRow:
    values: dict[str, Any] = {
        "id": account_id or uuid.uuid4(), "username": username, "display_name": display_name, "email": email,
        "password_hash": password_hash, "role": role, "status": "active", "webauthn_user_id": webauthn_user_id,
        "created_at": now, "updated_at": now, "password_changed_at": now if password_hash else None,
    }
    try:
        await conn.execute(_A.insert().values(**values))
    except IntegrityError as exc:
        raise UsernameTaken(log_detail=f"username {username!r} exists") from exc
    return AccountRow(**values)


async def username_exists(conn: AsyncConnection, username: str) -> bool:
    return bool(await conn.scalar(select(exists().where(_A.c.username == username))))


async def get_for_login(conn: AsyncConnection, username: str, *, now: datetime) -> tuple[AccountRow, EnrolledFactors] | None:
    """Everything a password login needs in one statement: the account and which factors it has."""
    return await _with_factors(conn, _A.c.username == username, now)


async def get_account(conn: AsyncConnection, account_id: uuid.UUID) -> AccountRow | None:
    row = (await conn.execute(select(_A).where(_A.c.id == account_id))).first()
    return _account(row) if row else None


async def lock_account(conn: AsyncConnection, account_id: uuid.UUID) -> bool:
    """Hold the account's row until this transaction ends, so per-account read-then-write
    checks (code send limits, adding a phone) run one at a time instead of all counting the
    same rows. PostgreSQL takes ``FOR NO KEY UPDATE``: it excludes every other locker of the
    row but not the ``KEY SHARE`` locks that inserting rows referencing the account takes,
    so a transaction that already wrote such a row (and then asks for this lock) cannot
    deadlock against another doing the same. SQLite needs no lock: write transactions start
    with ``BEGIN IMMEDIATE`` (store/db.py) and so never overlap. False if there is no such
    account."""
    stmt = select(_A.c.id).where(_A.c.id == account_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(key_share=True)
    return (await conn.execute(stmt)).first() is not None


async def get_by_username(conn: AsyncConnection, username: str) -> AccountRow | None:
    row = (await conn.execute(select(_A).where(_A.c.username == username))).first()
    return _account(row) if row else None


async def get_with_factors(
    conn: AsyncConnection, account_id: uuid.UUID, now: datetime
) -> tuple[AccountRow, EnrolledFactors] | None:
    return await _with_factors(conn, _A.c.id == account_id, now)


async def _with_factors(conn: AsyncConnection, where: Any, now: datetime) -> tuple[AccountRow, EnrolledFactors] | None:
    row = (await conn.execute(select(_A, *_factor_columns(_A.c.id, now)).where(where))).first()
    if row is None:
        return None
    return _account(row), _factors(row)


async def set_password_hash(conn: AsyncConnection, account_id: uuid.UUID, password_hash: str, now: datetime,
                            *, changed: bool = True) -> None:
    values: dict[str, Any] = {"password_hash": password_hash, "updated_at": now}
    if changed:
        values["password_changed_at"] = now
    await conn.execute(update(_A).where(_A.c.id == account_id).values(**values))


async def set_webauthn_user_id(conn: AsyncConnection, account_id: uuid.UUID, user_id: bytes) -> None:
    await conn.execute(update(_A).where(_A.c.id == account_id, _A.c.webauthn_user_id.is_(None))
                       .values(webauthn_user_id=user_id))


async def set_status(conn: AsyncConnection, account_id: uuid.UUID, status: str, now: datetime) -> bool:
    res = await conn.execute(update(_A).where(_A.c.id == account_id).values(status=status, updated_at=now))
    return bool(res.rowcount)


async def delete_account(conn: AsyncConnection, account_id: uuid.UUID) -> None:
    await conn.execute(delete(_A).where(_A.c.id == account_id))


async def search_accounts(conn: AsyncConnection, query: str | None, limit: int = 50) -> list[AccountRow]:
    stmt = select(_A).order_by(_A.c.username).limit(limit)
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").lower() + "%"
        stmt = stmt.where(or_(_A.c.username.like(pattern, escape="\\"), func.lower(_A.c.email).like(pattern, escape="\\")))
    return [_account(r) for r in (await conn.execute(stmt)).all()]


async def admin_emails(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(_A.c.email).where(_A.c.role == "admin", _A.c.status == "active",
                                                       _A.c.email.is_not(None)))
    return [r[0] for r in rows]
