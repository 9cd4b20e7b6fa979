"""The last step shared by every way of signing in: remember the device, write the audit
event, tell the user about a new device, and issue the session — in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.flows.base import create_flow, mfa_required, proofs_to_json
from authserver.flows.sessions import IssuedSession, SessionService
from authserver.methods.base import Proof
from authserver.policy.aal import combine, second_factor_methods
from authserver.policy.risk import ClientInfo, is_new_country
from authserver.store.repositories import accounts, countries, devices, events
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


async def check_new_country(ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, proofs: list[Proof],
                            client: ClientInfo, auth_time: datetime) -> None:
    """DESIGN §5: a sign-in from a new country needs one more verification before the session
    is issued — a second factor if the account has one (and this sign-in has not used two),
    else a code sent to the account's email address. Raises 401 ``mfa_required`` whose flow
    is committed with the refusal."""
    if not ctx.settings.new_country_check or client.country is None or any(p.method == "email" for p in proofs):
        return  # no trusted country header: nothing to compare (and no extra query on the hot path)
    if not is_new_country(client.country, await countries.known_countries(conn, account.id)):
        return
    used = {p.method for p in proofs if p.factor_class != "email"}
    if len(used) >= 2:
        return  # this sign-in already proved two factors
    found = await accounts.get_with_factors(conn, account.id, ctx.clock.now())
    factors = found[1] if found else None
    methods = [m for m in second_factor_methods(factors) if m not in used] if factors else []
    if not methods and account.email:
        methods = ["email"]
    now = ctx.clock.now()
    await events.insert_event(conn, type="new_country", account_id=account.id, now=now, ip=client.ip,
                              user_agent=client.user_agent,
                              details={"country": client.country, "verification": methods or None})
    if not methods:
        return  # nothing to ask for: the event and the new-device email are all we can do
    aal, amr = combine(proofs)
    flow = await create_flow(ctx, conn, kind="login", state="mfa_pending", account_id=account.id, client=client,
                             methods=methods, amr=amr, aal=aal, auth_time=auth_time,
                             data={"proofs": proofs_to_json(proofs), "risk": "new_country"})
    challenge = mfa_required(flow.token, methods, flow.row.expires_at, reason="new_country")
    challenge.commit_transaction = True
    raise challenge


async def issue_session(ctx: AppContext, sessions: SessionService, conn: AsyncConnection, *,
                        account: AccountRow, proofs: list[Proof], client: ClientInfo, auth_time: datetime,
                        event: str = "login", new_device_is_news: bool = True) -> IssuedSession:
    if new_device_is_news:
        await check_new_country(ctx, conn, account=account, proofs=proofs, client=client, auth_time=auth_time)
    aal, amr = combine(proofs)
    now = ctx.clock.now()
    device = await remember_device(ctx, conn, account, client, notify_if_new=new_device_is_news)
    if client.country is not None:
        await countries.remember_country(conn, account.id, client.country, now)
    # an email code (risk check) is not an authenticator: it never makes a sign-in "fresh"
    mfa = len({p.method for p in proofs if p.factor_class != "email"}) >= 2 or aal >= 2
    issued = await sessions.issue(conn, account=account, aal=aal, amr=amr, auth_time=auth_time,
                                  last_mfa_at=now if mfa else None, device_id=device.id, ip=client.ip,
                                  user_agent=client.user_agent)
    await events.insert_event(conn, type=event, account_id=account.id, now=now, ip=client.ip,
                              user_agent=client.user_agent, device_id=device.id,
                              details={"aal": aal, "amr": amr, "session_id": str(issued.row.id)})
    return issued
