"""The login flow: the stateless REST 2FA pattern of DESIGN §6.

Step one proves a first factor (password, or a passkey). If the account's policy needs
more, the answer is 401 ``mfa_required`` with a flow token and the methods still open; the
client completes one of them against the flow. A REST client can skip the round trip by
sending ``X-MFA-Code`` with its password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.errors import (
    AccountDisabled,
    AuthError,
    CodeReused,
    InvalidCode,
    InvalidCredentials,
    MethodNotAllowed,
    MfaRequired,
)
from authserver.flows.base import (
    create_flow,
    finish_flow,
    iso,
    load_flow,
    mfa_required,
    proofs_from_json,
    proofs_to_json,
)
from authserver.flows.sessions import IssuedSession, SessionService
from authserver.flows.signin import issue_session
from authserver.methods.base import Proof
from authserver.methods.password import PASSWORD_PROOF
from authserver.policy.aal import combine, required_login_aal, second_factor_methods
from authserver.policy.ratelimit import account_key, ip_key
from authserver.policy.risk import ClientInfo
from authserver.store.repositories import accounts, events
from authserver.store.repositories.accounts import AccountRow, EnrolledFactors
from authserver.store.repositories.flows import FlowRow

LOGIN_FLOW = "login"
MFA_PENDING = "mfa_pending"


class CodeFactor(Protocol):
    """A factor that can be proven by a typed code (TOTP, SMS, recovery code): the ones a
    REST client may send in ``X-MFA-Code``."""

    name: str

    async def verify_code(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                          factors: EnrolledFactors, code: str, scope: str) -> Proof | None:
        """A proof, or None when this factor does not apply (not enrolled, wrong shape).
        Raises InvalidCode / CodeReused when it applies and the code is wrong."""
        ...


def normalize_username(raw: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", raw).strip().casefold()


class LoginService:
    def __init__(self, ctx: AppContext, sessions: SessionService) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.code_factors: list[CodeFactor] = []

    async def password_login(self, *, username: str, password: str, client: ClientInfo,
                             mfa_code: str | None = None) -> IssuedSession:
        ctx = self.ctx
        username = normalize_username(username)
        now = ctx.clock.now()
        user_lock, addr_lock = account_key(username), ip_key(client.ip)
        # Count the attempt before looking at the password (and whether the user exists):
        # a burst of parallel guesses is cut at the limit, and an unknown name locks like a known one.
        async with ctx.db.transaction() as conn:
            await ctx.regulator.reserve(conn, [user_lock, addr_lock], now)
        async with ctx.db.read() as conn:
            found = await accounts.get_for_login(conn, username, now=now)
        check = await asyncio.to_thread(ctx.passwords.verify, found[0].password_hash if found else None, password)
        if found is None or not check.ok:
            await self._record_failure(found[0] if found else None, username, client, "password")
            raise InvalidCredentials(log_detail=f"password login failed for {username!r}")
        account, factors = found
        if account.status != "active":
            raise AccountDisabled()
        proofs = [PASSWORD_PROOF]
        needs_mfa = required_login_aal(factors) > 1
        challenge: MfaRequired | None = None
        async with ctx.db.transaction() as conn:
            if check.new_hash:
                await accounts.set_password_hash(conn, account.id, check.new_hash, now, changed=False)
            if not needs_mfa:
                await ctx.regulator.release(conn, account_keys=[user_lock], other_keys=[addr_lock])
                return await issue_session(ctx, self.sessions, conn, account=account, proofs=proofs,
                                           client=client, auth_time=now)
            if mfa_code is None:
                # the password was right: give its attempt back, but keep earlier failures
                # counted — the account is reset only when the whole login succeeds
                await ctx.regulator.release(conn, account_keys=[], other_keys=[user_lock, addr_lock])
                challenge = await self._start_mfa(conn, account, factors, proofs, client, auth_time=now)
        if challenge is not None:
            raise challenge
        assert mfa_code is not None  # noqa: S101 - narrowed above
        try:
            second = await self.verify_header_code(account, factors, mfa_code, scope="login")
        except (InvalidCode, CodeReused):
            await self._record_failure(account, username, client, "mfa_header")
            raise
        async with ctx.db.transaction() as conn:
            await ctx.regulator.release(conn, account_keys=[user_lock], other_keys=[addr_lock])
            return await issue_session(ctx, self.sessions, conn, account=account, proofs=[*proofs, second],
                                       client=client, auth_time=now)

    async def verify_header_code(self, account: AccountRow, factors: EnrolledFactors, code: str, *,
                                 scope: str) -> Proof:
        """Try ``X-MFA-Code`` against each code factor in its own transaction, which commits
        even when the code is wrong: a wrong try must count against the code (SMS codes die
        after three) and a consumed step or code must stay consumed."""
        failure: AuthError | None = None
        proof: Proof | None = None
        async with self.ctx.db.transaction() as conn:
            for factor in self.code_factors:
                try:
                    proof = await factor.verify_code(self.ctx, conn, account=account, factors=factors, code=code,
                                                     scope=scope)
                except (InvalidCode, CodeReused) as exc:
                    failure = exc
                    break
                if proof is not None:
                    break
        if failure is not None:
            raise failure
        if proof is None:
            raise InvalidCode(log_detail="X-MFA-Code matched no enrolled factor")
        return proof

    async def _start_mfa(self, conn: AsyncConnection, account: AccountRow, factors: EnrolledFactors,
                         proofs: list[Proof], client: ClientInfo, *, auth_time: datetime,
                         exclude: Sequence[str] = ()) -> MfaRequired:
        methods = [m for m in second_factor_methods(factors) if m not in exclude]
        aal, amr = combine(proofs)
        flow = await create_flow(self.ctx, conn, kind=LOGIN_FLOW, state=MFA_PENDING, account_id=account.id,
                                 client=client, methods=methods, amr=amr, aal=aal, auth_time=auth_time,
                                 data={"proofs": proofs_to_json(proofs)})
        return mfa_required(flow.token, methods, flow.row.expires_at)

    async def start_mfa(self, conn: AsyncConnection, account: AccountRow, factors: EnrolledFactors,
                        proofs: list[Proof], client: ClientInfo, *, auth_time: datetime,
                        exclude: Sequence[str] = ()) -> MfaRequired:
        """Open the second step for a first factor other than the password (e.g. a passkey
        assertion without user verification)."""
        return await self._start_mfa(conn, account, factors, proofs, client, auth_time=auth_time,
                                     exclude=exclude)

    async def load_mfa_flow(self, conn: AsyncConnection, flow_token: str, method: str, *,
                            attempt: bool = True) -> tuple[FlowRow, AccountRow, EnrolledFactors]:
        """The pending login flow, its account and factors. ``attempt`` says the caller is
        about to check a code, which counts against the account (a *send* is not a guess:
        it only has to respect an existing lock)."""
        flow = await load_flow(self.ctx, conn, flow_token, kinds=(LOGIN_FLOW,))
        if flow.state != MFA_PENDING or method not in flow.methods or flow.account_id is None:
            raise MethodNotAllowed(log_detail=f"{method} not open in flow {flow.id}")
        found = await accounts.get_with_factors(conn, flow.account_id, self.ctx.clock.now())
        if found is None:
            raise AuthError(log_detail="flow account vanished")
        account, factors = found
        if method != "webauthn":  # an assertion cannot be guessed, so it is never locked out
            keys, now = [account_key(account.username)], self.ctx.clock.now()
            if attempt:
                # counted in the caller's transaction, which commits even when the code is wrong;
                # on PostgreSQL the row lock makes parallel guesses on one account wait their turn
                await self.ctx.regulator.reserve(conn, keys, now)
            else:
                await self.ctx.regulator.check(conn, keys, now)
        return flow, account, factors

    async def finish_mfa(self, conn: AsyncConnection, flow: FlowRow, account: AccountRow, proof: Proof,
                         client: ClientInfo) -> IssuedSession:
        await finish_flow(conn, flow)
        await self.ctx.regulator.release(conn, account_keys=[account_key(account.username)], other_keys=[])
        proofs = [*proofs_from_json(flow.data.get("proofs", [])), proof]
        if account.status != "active":
            raise AccountDisabled()
        return await issue_session(self.ctx, self.sessions, conn, account=account, proofs=proofs, client=client,
                                   auth_time=flow.auth_time or self.ctx.clock.now())

    async def record_mfa_failure(self, account: AccountRow, client: ClientInfo, method: str) -> None:
        await self._record_failure(account, account.username, client, method)

    async def _record_failure(self, account: AccountRow | None, username: str, client: ClientInfo,
                              method: str) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        keys = [ip_key(client.ip), account_key(username)]
        async with ctx.db.transaction() as conn:
            locked = await ctx.regulator.record_failure(conn, keys, now)
            if account is not None:
                await events.insert_event(conn, type="login_failed", account_id=account.id, now=now, ip=client.ip,
                                          user_agent=client.user_agent, details={"method": method})
                if locked is not None:
                    await events.insert_event(conn, type="account_locked", account_id=account.id, now=now,
                                              ip=client.ip, details={"until": iso(locked)})
