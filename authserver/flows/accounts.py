"""Account lifecycle: sign-up with a password, password change, deletion."""

from __future__ import annotations

import asyncio
import re
import unicodedata

from authserver.context import AppContext
from authserver.errors import InvalidCredentials, UsernameTaken, ValidationFailed
from authserver.flows.login import normalize_username
from authserver.flows.sessions import AuthContext, IssuedSession, SessionService
from authserver.flows.signin import issue_session
from authserver.methods.password import PASSWORD_PROOF
from authserver.policy.ratelimit import account_key, ip_key
from authserver.policy.risk import ClientInfo
from authserver.store.repositories import accounts, events, flows, sessions
from authserver.store.repositories.accounts import AccountRow

_USERNAME = re.compile(r"^[\w][\w.@+-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")


def valid_username(raw: str) -> str:
    username = normalize_username(raw)
    if not _USERNAME.fullmatch(username) or any(unicodedata.category(c).startswith("C") for c in username):
        raise ValidationFailed("usernames are 1-64 letters, digits or . _ @ + -", field="username")
    return username


def valid_email(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    email = raw.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email) or any(unicodedata.category(c).startswith("C") for c in email):
        raise ValidationFailed("not an email address", field="email")
    return email


def valid_display_name(raw: str | None, username: str) -> str:
    name = (raw or "").strip() or username
    if len(name) > 128 or any(unicodedata.category(c) == "Cc" for c in name):
        raise ValidationFailed("display names are up to 128 printable characters", field="display_name")
    return name


class AccountService:
    def __init__(self, ctx: AppContext, sessions: SessionService) -> None:
        self.ctx = ctx
        self.sessions = sessions

    async def signup(self, *, username: str, display_name: str | None, email: str | None, password: str | None,
                     client: ClientInfo, role: str = "user") -> tuple[AccountRow, IssuedSession | None]:
        ctx = self.ctx
        username = valid_username(username)
        email = valid_email(email)
        display = valid_display_name(display_name, username)
        password_hash = None
        if password is not None:
            ctx.passwords.validate_new(password, username=username)
            async with ctx.db.read() as conn:
                if await accounts.username_exists(conn, username):
                    raise UsernameTaken()
            password_hash = await asyncio.to_thread(ctx.passwords.hash, password)
        now = ctx.clock.now()
        async with ctx.db.transaction() as conn:
            account = await accounts.insert_account(conn, username=username, display_name=display, email=email,
                                                    password_hash=password_hash, now=now, role=role)
            await events.insert_event(conn, type="account_created", account_id=account.id, now=now, ip=client.ip,
                                      user_agent=client.user_agent)
            issued = None
            if password_hash is not None:
                issued = await issue_session(ctx, self.sessions, conn, account=account, proofs=[PASSWORD_PROOF],
                                             client=client, auth_time=now, event="login",
                                             new_device_is_news=False)
        return account, issued

    async def change_password(self, auth: AuthContext, *, current: str | None, new: str,
                              ip: str | None = None) -> int:
        """Returns how many other sessions were revoked (all of them: a changed password
        must end whatever an attacker who knew the old one had opened)."""
        ctx = self.ctx
        account = auth.account
        lock_keys = [account_key(account.username), ip_key(ip)]
        if account.password_hash is not None:
            # A passkey-only account sets its first password on the strength of step-up alone.
            # Guesses at the current password are regulated like any other password check.
            async with ctx.db.transaction() as conn:
                await ctx.regulator.reserve(conn, lock_keys, ctx.clock.now())
            check = await asyncio.to_thread(ctx.passwords.verify, account.password_hash, current or "")
            if not check.ok:
                now = ctx.clock.now()
                async with ctx.db.transaction() as conn:
                    await ctx.regulator.record_failure(conn, lock_keys, now)
                    await events.insert_event(conn, type="password_change_failed", account_id=account.id, now=now,
                                              ip=ip)
                raise InvalidCredentials(log_detail="wrong current password on change")
        ctx.passwords.validate_new(new, username=account.username)
        new_hash = await asyncio.to_thread(ctx.passwords.hash, new)
        now = ctx.clock.now()
        async with ctx.db.transaction() as conn:
            await accounts.set_password_hash(conn, account.id, new_hash, now)
            await ctx.regulator.release(conn, account_keys=lock_keys[:1], other_keys=lock_keys[1:])
            revoked = await sessions.revoke_all(conn, account.id, now, except_id=auth.session.id)
            # a login begun with the old password must not finish after the change
            await flows.end_pending_for_account(conn, account.id)
            await events.insert_event(conn, type="password_changed", account_id=account.id, now=now,
                                      details={"sessions_revoked": revoked})
            if account.email:
                await ctx.outbox.enqueue(conn, channel="email", to=account.email, subject="Your password was changed",
                                         body=f"The password of {account.username} was changed at "
                                              f"{now.isoformat(timespec='seconds')}.")
        return revoked

    async def delete(self, auth: AuthContext) -> None:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            await events.insert_event(conn, type="account_deleted", account_id=auth.account.id, now=now,
                                      details={"username": auth.account.username})
            await accounts.delete_account(conn, auth.account.id)
