"""Dead rows are cleaned up: expired flows, long-dead sessions."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from authserver.housekeeping import Housekeeper
from authserver.store.models import Flow, Session
from tests.api.test_login import enrol_second_factor_row
from tests.conftest import services_of
from tests.support.api import login, signup


async def test_expired_flows_and_old_sessions_are_removed(client, clock):
    services = services_of(client)
    account, token = await signup(client)
    await enrol_second_factor_row(client, account["username"])
    assert (await login(client, account["username"])).status_code == 401  # leaves a pending flow
    await client.delete("/api/v1/session", headers={"Authorization": f"Bearer {token}"})
    keeper = Housekeeper(services.ctx.db, clock)

    async def counts() -> tuple[int, int]:
        async with services.ctx.db.read() as conn:
            flows = await conn.scalar(
                select(func.count()).select_from(Flow).where(Flow.account_id == account_id)
            )
            sessions = await conn.scalar(
                select(func.count()).select_from(Session).where(Session.account_id == account_id)
            )
        return int(flows or 0), int(sessions or 0)

    account_id = uuid.UUID(account["id"])
    assert await counts() == (1, 1)
    await keeper.run_once()
    assert await counts() == (1, 1)  # nothing is dead yet
    clock.advance(minutes=11)
    await keeper.run_once()
    assert await counts() == (0, 1)  # the flow expired; the revoked session is kept for history
    clock.advance(days=31)
    await keeper.run_once()
    assert await counts() == (0, 0)
