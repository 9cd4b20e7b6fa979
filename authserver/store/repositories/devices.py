from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import Device
from authserver.store.models.base import table_of

_D = table_of(Device)


@dataclass(frozen=True, kw_only=True)
class DeviceRow:
    id: uuid.UUID
    kind: str
    user_agent: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    last_ip: str | None
    last_country: str | None


async def upsert_device(conn: AsyncConnection, *, account_id: uuid.UUID, device_key: bytes, kind: str,
                        user_agent: str | None, ip: str | None, country: str | None,
                        now: datetime) -> tuple[DeviceRow, bool]:
    """Record a sign-in from a device in one statement; the flag says whether it is new."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    new_id = uuid.uuid4()
    base = insert(_D).values(id=new_id, account_id=account_id, device_key=device_key, kind=kind,
                             user_agent=user_agent, first_seen_at=now, last_seen_at=now, last_ip=ip,
                             last_country=country)
    stmt = base.on_conflict_do_update(
        index_elements=[_D.c.account_id, _D.c.device_key],
        # a request without a country (no trusted proxy said) keeps the one we knew
        set_={"last_seen_at": now, "last_ip": ip, "user_agent": user_agent,
              "last_country": func.coalesce(base.excluded.last_country, _D.c.last_country)},
    ).returning(_D.c.id, _D.c.kind, _D.c.user_agent, _D.c.first_seen_at, _D.c.last_seen_at, _D.c.last_ip,
                _D.c.last_country)
    row = (await conn.execute(stmt)).one()
    device = DeviceRow(**dict(row._mapping))
    return device, device.id == new_id


async def list_devices(conn: AsyncConnection, account_id: uuid.UUID) -> list[DeviceRow]:
    stmt = (select(_D.c.id, _D.c.kind, _D.c.user_agent, _D.c.first_seen_at, _D.c.last_seen_at, _D.c.last_ip,
                   _D.c.last_country).where(_D.c.account_id == account_id).order_by(_D.c.last_seen_at.desc()))
    return [DeviceRow(**dict(r._mapping)) for r in (await conn.execute(stmt)).all()]


async def touch(conn: AsyncConnection, device_id: uuid.UUID, **values: Any) -> None:
    await conn.execute(update(_D).where(_D.c.id == device_id).values(**values))
