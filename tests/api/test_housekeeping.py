"""Dead rows are cleaned up: expired flows, long-dead sessions, old finished outbox messages."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from authserver.housekeeping import Housekeeper
from authserver.store.models import Flow, OutboxMessage, Session
from authserver.store.repositories import outbox
from tests.api.test_login import enrol_second_factor_row
from tests.conftest import services_of
from tests.support.api import login, signup, uniq


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


async def test_finished_outbox_messages_go_after_a_week(client, clock):
    """Sent and abandoned messages are kept seven days, then deleted; one still queued stays
    whatever its age (it has not been delivered yet)."""
    services = services_of(client)
    db = services.ctx.db
    sent_to, abandoned_to, queued_to = (f"{uniq(kind)}@example.com" for kind in ("sent", "abandoned", "queued"))
    async with db.transaction() as conn:
        await outbox.enqueue(conn, channel="email", to=sent_to, subject="s", body="123456", now=clock.now())
    await services.ctx.outbox.drain()
    async with db.transaction() as conn:
        abandoned = await outbox.enqueue(conn, channel="email", to=abandoned_to, subject="s", body="1", now=clock.now())
        await outbox.mark_failed(conn, abandoned, error="SMTPException", retry_at=None)
        await outbox.enqueue(conn, channel="email", to=queued_to, subject="s", body="1", now=clock.now())
    keeper = Housekeeper(db, clock)

    async def statuses() -> dict[str, str]:
        async with db.read() as conn:
            rows = await conn.execute(select(OutboxMessage.to, OutboxMessage.status)
                                      .where(OutboxMessage.to.in_((sent_to, abandoned_to, queued_to))))
            return {r.to: r.status for r in rows}

    assert await statuses() == {sent_to: "sent", abandoned_to: "abandoned", queued_to: "queued"}
    clock.advance(days=6)
    await keeper.run_once()
    assert len(await statuses()) == 3
    clock.advance(days=1, seconds=1)
    removed = await keeper.run_once()
    assert removed["outbox"] >= 2
    assert await statuses() == {queued_to: "queued"}
    await services.ctx.outbox.drain()  # leave nothing queued for the tests that share this database


async def test_stale_attempt_counters_go_but_send_history_stays_an_hour(client, clock):
    from sqlalchemy import select

    from authserver.store.models import Lockout
    from tests.support.api import login

    services = services_of(client)
    account, _ = await signup(client)
    await login(client, account["username"], "wrong password")
    key = f"user:{account['username']}"

    async def counter_exists() -> bool:
        async with services.ctx.db.read() as conn:
            return await conn.scalar(select(Lockout.key).where(Lockout.key == key)) is not None

    keeper = Housekeeper(services.ctx.db, clock)
    await keeper.run_once()
    assert await counter_exists()
    clock.advance(days=1, seconds=1)
    await keeper.run_once()
    assert not await counter_exists()
