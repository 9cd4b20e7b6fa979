"""The last step shared by every way of signing in: remember the device, write the audit
event, tell the user about a new device, and issue the session — in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.flows.sessions import IssuedSession, SessionService
from authserver.methods.base import Proof
from authserver.policy.aal import combine
from authserver.policy.risk import ClientInfo
from authserver.store.repositories import devices, events
from authserver.store.repositories.accounts import AccountRow


async def remember_device(ctx: AppContext, conn: AsyncConnection, account: AccountRow, client: ClientInfo,
                          *, notify_if_new: bool) -> devices.DeviceRow:
    now = ctx.clock.now()
    device, is_new = await devices.upsert_device(
        conn, account_id=account.id, device_key=client.device_key, kind=client.device_kind,
        user_agent=client.user_agent, ip=client.ip, country=client.country, now=now)
    if is_new and notify_if_new:
        await events.insert_event(conn, type="new_device", account_id=account.id, now=now, ip=client.ip,
                                  user_agent=client.user_agent, device_id=device.id)
        if account.email and ctx.settings.new_device_email:
            await ctx.outbox.enqueue(
                conn, channel="email", to=account.email, subject="New sign-in to your account",
                body=(f"Your account {account.username} was used to sign in from a new device "
                      f"({client.user_agent or 'unknown client'}, address {client.ip or 'unknown'}) at "
                      f"{now.isoformat(timespec='seconds')}. If this was not you, change your password "
                      "and review your security keys."))
    return device


async def issue_session(ctx: AppContext, sessions: SessionService, conn: AsyncConnection, *,
                        account: AccountRow, proofs: list[Proof], client: ClientInfo, auth_time: datetime,
                        event: str = "login", new_device_is_news: bool = True) -> IssuedSession:
    aal, amr = combine(proofs)
    now = ctx.clock.now()
    device = await remember_device(ctx, conn, account, client, notify_if_new=new_device_is_news)
    mfa = len({p.method for p in proofs}) >= 2 or aal >= 2
    issued = await sessions.issue(conn, account=account, aal=aal, amr=amr, auth_time=auth_time,
                                  last_mfa_at=now if mfa else None, device_id=device.id, ip=client.ip,
                                  user_agent=client.user_agent)
    await events.insert_event(conn, type=event, account_id=account.id, now=now, ip=client.ip,
                              user_agent=client.user_agent, device_id=device.id,
                              details={"aal": aal, "amr": amr, "session_id": str(issued.row.id)})
    return issued
