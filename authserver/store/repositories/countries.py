from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import AccountCountry
from authserver.store.models.base import table_of

_C = table_of(AccountCountry)


async def known_countries(conn: AsyncConnection, account_id: uuid.UUID) -> set[str]:
    rows = await conn.execute(select(_C.c.country).where(_C.c.account_id == account_id))
    return {r[0] for r in rows}


async def remember_country(conn: AsyncConnection, account_id: uuid.UUID, country: str, now: datetime) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(insert(_C).values(account_id=account_id, country=country, first_seen_at=now, last_seen_at=now)
                       .on_conflict_do_update(index_elements=[_C.c.account_id, _C.c.country],
                                              set_={"last_seen_at": now}))
