"""The small interface every factor sits behind.

A factor *proves* something: its ``complete`` step returns a :class:`Proof` naming the
RFC 8176 ``amr`` values it establishes and the AAL it reaches on its own. Flows combine
proofs into a session (policy/aal.py); they never need to know how a factor works.
Adding a factor means one module, its routes, and one line in wiring.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from authserver.store.repositories import accounts

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from authserver.context import AppContext
    from authserver.store.repositories.accounts import AccountRow, EnrolledFactors


@dataclass(frozen=True, kw_only=True)
class Proof:
    """What one successful factor check established."""

    method: str
    amr: frozenset[str]
    aal: int = 1
    factor_class: str = "know"  # know | have | are: distinct classes make multi-factor


SECOND_FACTOR_ORDER = ("webauthn", "totp", "sms", "recovery_code")


async def fresh_factors(ctx: AppContext, conn: AsyncConnection, account: AccountRow,
                        known: EnrolledFactors) -> EnrolledFactors:
    """Lock the account row and read its factors again inside the removing transaction:
    removals of one account's factors then run one at a time, and none of them decides on
    a count that a concurrent removal has already changed (``last_factor`` races)."""
    await accounts.lock_account(conn, account.id)
    found = await accounts.get_with_factors(conn, account.id, ctx.clock.now())
    return found[1] if found else known
