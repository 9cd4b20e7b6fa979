"""Re-seal every sealed column under the current key (``authserver rotate-keys``).

Each sealed column is listed once in ``SEALED_COLUMNS`` with the function that gives the
AAD it was sealed with, so adding a secret column means adding one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Table, select, update

from authserver.crypto import KeyRing
from authserver.store.db import Database
from authserver.store.models import TotpSecret
from authserver.store.models.base import table_of

SealedColumn = tuple[Table, Column[Any], Column[Any], Callable[[Any], bytes]]

SEALED_COLUMNS: list[SealedColumn] = [
    (table_of(TotpSecret), table_of(TotpSecret).c.secret_sealed, table_of(TotpSecret).c.account_id,
     lambda pk: f"totp:{pk}".encode()),
]


async def reseal_all(database_url: str, ring: KeyRing) -> int:
    db = Database(database_url)
    count = 0
    try:
        for table, column, pk, aad_of in SEALED_COLUMNS:
            async with db.transaction() as conn:
                rows = (await conn.execute(select(pk, column))).all()
                for key, sealed in rows:
                    if sealed is None or ring.sealed_kid(sealed) == ring.current.kid:
                        continue
                    plain = ring.open(sealed, aad=aad_of(key))
                    await conn.execute(update(table).where(pk == key, column == sealed)
                                       .values({column.name: ring.seal(plain, aad=aad_of(key))}))
                    count += 1
    finally:
        await db.dispose()
    return count
