"""WebAuthn ceremonies as flows: passkey sign-up, passkey-first login, WebAuthn as the second
step of a password login, WebAuthn step-up, and managing an account's credentials.

Every ceremony is two requests. *Begin* creates (or reuses) a flow row holding a fresh
challenge and answers with the options; *finish* takes the challenge out of the row in
its own committed transaction — so it is single use whatever happens next (WebAuthn L3
§13.4.3) — verifies the response, and only then writes. Nothing lives in process memory,
so a ceremony begun on one replica finishes on another (DESIGN §8).

The order inside *finish* is deliberate: parse first (malformed input is a 400 that
burns nothing and writes nothing), then take the challenge, then find the credential (we
need its public key), then verify the signature, and only after that look at the
credential's state (revoked, expired, cloned): only the holder of the key learns it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.crypto import b64url_decode, b64url_encode
from authserver.errors import (
    AccountDisabled,
    AlreadyRegistered,
    ChallengeExpired,
    CredentialExpired,
    CredentialRevoked,
    FlowExpired,
    LastFactor,
    MfaRequired,
    NotEnrolled,
    NotFound,
    PossibleClone,
    UnknownCredential,
    UsernameTaken,
    ValidationFailed,
    WebAuthnFailed,
)
from authserver.flows.accounts import valid_display_name, valid_email, valid_username
from authserver.flows.base import create_flow, finish_flow, load_flow
from authserver.flows.login import LoginService, normalize_username
from authserver.flows.sessions import AuthContext, IssuedSession, SessionService
from authserver.flows.signin import issue_session
from authserver.flows.stepup import StepUpService
from authserver.metadata import MetadataError, MetadataStore, load_blob_file
from authserver.methods.base import Proof
from authserver.methods.webauthn import (
    KINDS,
    CredentialKind,
    Descriptor,
    VerifiedAssertion,
    VerifiedRegistration,
    WebAuthnMethod,
    assertion_proof,
    is_counter_regression,
    relying_party,
)
from authserver.methods.webauthn_attestation import AttestationPolicy, AttestationVerdict, authenticator_info
from authserver.methods.webauthn_parse import AssertionResponse, parse_assertion, parse_registration
from authserver.policy.aal import after_step_up, required_login_aal, second_factor_methods
from authserver.policy.risk import ClientInfo
from authserver.settings import Settings
from authserver.store.repositories import accounts, events, flows
from authserver.store.repositories import webauthn_credentials as credentials
from authserver.store.repositories.accounts import AccountRow, EnrolledFactors
from authserver.store.repositories.factor_summary import FactorSummary, summarize
from authserver.store.repositories.flows import FlowRow
from authserver.store.repositories.webauthn_credentials import CredentialRow

log = logging.getLogger(__name__)

SIGNUP_FLOW: Final = "passkey_signup"
LOGIN_FLOW: Final = "webauthn_login"
STEP_UP_FLOW: Final = "webauthn_step_up"
REGISTER_FLOW: Final = "webauthn_register"
PENDING: Final = "pending"
MAX_NICKNAME = 64

T = TypeVar("T")
UserVerification = Literal["required", "preferred", "discouraged"]


@dataclass(frozen=True, kw_only=True)
class Ceremony:
    """What *begin* hands the client: the flow token (absent when the ceremony rides on an
    existing login flow) and the WebAuthn options JSON."""

    flow_token: str | None
    options: dict[str, Any]

    def __repr__(self) -> str:
        return "Ceremony(<hidden>)"


@dataclass(frozen=True, kw_only=True)
class SignupResult:
    account: AccountRow
    credential: CredentialRow
    session: IssuedSession


@dataclass(frozen=True, kw_only=True)
class StepUpResult:
    aal: int
    amr: list[str]
    last_mfa_at: datetime


@dataclass(frozen=True, kw_only=True)
class CredentialList:
    webauthn: list[CredentialRow]
    factors: FactorSummary


class _CounterRace(Exception):
    """The conditional counter update lost: another use with a higher counter got there first."""


def valid_nickname(raw: str | None) -> str | None:
    if raw is None:
        return None
    nickname = unicodedata.normalize("NFC", raw).strip()
    if len(nickname) > MAX_NICKNAME or any(unicodedata.category(c).startswith("C") for c in nickname):
        raise ValidationFailed(f"nicknames are up to {MAX_NICKNAME} printable characters", field="nickname")
    return nickname or None


def valid_kind(raw: str) -> CredentialKind:
    if raw not in KINDS:
        raise ValidationFailed('kind must be "passkey" or "security-key"', field="kind")
    return "passkey" if raw == "passkey" else "security-key"


def _descriptors(rows: Sequence[CredentialRow]) -> list[Descriptor]:
    return [Descriptor(id=r.credential_id, transports=tuple(r.transports)) for r in rows]


def _uv_of(flow: FlowRow) -> UserVerification:
    value = (flow.data.get("webauthn") or {}).get("uv", "discouraged")
    return "required" if value == "required" else "preferred" if value == "preferred" else "discouraged"


class WebAuthnService:
    """The WebAuthn factor's flows. Built once per app in ``wiring.build_services``."""

    name = "webauthn"

    def __init__(self, ctx: AppContext, *, sessions: SessionService, login: LoginService,
                 stepup: StepUpService) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.sessions = sessions
        self.login = login
        self.stepup = stepup
        self.policy = AttestationPolicy(mode=settings.attestation_policy, allowlist=settings.attestation_allowlist)
        conveyance = settings.attestation
        if conveyance == "none" and self.policy.wants_attestation:
            conveyance = "direct"  # a policy that judges attestation must ask for one
        self.method = WebAuthnMethod(
            relying_party(rp_id=settings.rp_id, rp_name=settings.rp_name, origins=settings.origins,
                          related_origins=settings.related_origins, u2f_appid=settings.u2f_appid),
            attestation=conveyance, timeout_ms=settings.challenge_ttl * 1000)
        self.metadata: MetadataStore | None = None
        self._metadata_applied: MetadataStore | None = None
        self._metadata_lock = asyncio.Lock()
        self._blob_mtime: int | None = None
        self._load_metadata_file()

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    # ---- metadata ----------------------------------------------------------------------

    def _blob_mtime_now(self) -> int | None:
        path = self.settings.mds_blob_path
        if not path or not self.settings.mds_root_cert:
            return None
        try:
            return os.stat(path).st_mtime_ns
        except OSError:
            return None

    def _load_metadata_file(self) -> None:
        """(Re)load ``AUTHSERVER_MDS_BLOB_PATH`` when it changed on disk (``authserver mds-refresh``
        replaces it atomically). A BLOB that does not verify is logged and ignored: we keep
        the last good one rather than trust an unverified list."""
        mtime = self._blob_mtime_now()
        if mtime is None or mtime == self._blob_mtime:
            return
        self._blob_mtime = mtime
        path, root = self.settings.mds_blob_path, self.settings.mds_root_cert
        assert path is not None and root is not None  # noqa: S101 - _blob_mtime_now checked both
        try:
            self.metadata = load_blob_file(Path(path), root_cert_path=Path(root), now=self.ctx.clock.now())
        except MetadataError as exc:
            log.error("metadata BLOB %s not loaded: %s", path, exc.message)

    async def _email_owner(self, conn: AsyncConnection, account_id: uuid.UUID, *, subject: str,
                           body: str) -> None:
        """Tell a credential's owner about it by email, when the account has an address;
        ``{username}`` in ``body`` becomes the account's name."""
        account = await accounts.get_account(conn, account_id)
        if account is not None and account.email:
            await self.ctx.outbox.enqueue(conn, channel="email", to=account.email, subject=subject,
                                          body=body.replace("{username}", account.username))

    async def startup(self) -> int:
        """Apply the BLOB loaded at construction to existing credentials now rather than at
        the first WebAuthn request (an app's lifespan may call this; both are idempotent)."""
        return await self._apply_pending_metadata()

    async def load_metadata(self, store: MetadataStore) -> int:
        """Use a newly verified BLOB from now on, and re-check every credential against it."""
        self.metadata = store
        return await self._apply_pending_metadata()

    async def _apply_pending_metadata(self) -> int:
        """Pick up a BLOB replaced on disk (parsed off the event loop: the real one is MiBs)
        and apply a BLOB not yet applied; a stat() per call otherwise."""
        mtime = self._blob_mtime_now()
        if mtime is not None and mtime != self._blob_mtime:
            async with self._metadata_lock:
                await asyncio.to_thread(self._load_metadata_file)
        if self.metadata is None or self._metadata_applied is self.metadata:
            return 0
        async with self._metadata_lock:
            store = self.metadata
            if store is None or self._metadata_applied is store:
                return 0
            flagged = await self.apply_metadata(store)
            self._metadata_applied = store
            return flagged

    async def apply_metadata(self, store: MetadataStore) -> int:
        """Re-check every live credential against a metadata BLOB: refresh authenticator
        names, and mark credentials of a model now reported compromised ``at_risk`` (with a
        security event and a note to the user). Returns how many were newly marked.
        Idempotent: a credential is marked (and reported) once, whichever replica runs it."""
        now = self.ctx.clock.now()
        flagged: list[tuple[CredentialRow, str, str]] = []
        async with self.ctx.db.transaction() as conn:
            renames: dict[str, list[uuid.UUID]] = {}
            for row in await credentials.list_unrevoked(conn):
                info = authenticator_info(store, row.aaguid, now)
                if info is None:
                    continue
                if info.name and info.name != row.authenticator_name:
                    renames.setdefault(info.name, []).append(row.id)
                if info.compromised and not row.at_risk:
                    if await credentials.mark_at_risk(conn, row.id, f"metadata:{info.status}"):
                        flagged.append((row, info.name, info.compromise_reason or info.status))
            for name, ids in renames.items():
                await credentials.set_authenticator_name(conn, ids, name)
            for row, name, reason in flagged:
                await events.insert_event(conn, type="webauthn_credential_at_risk", account_id=row.account_id,
                                          now=now, details={"credential_id": str(row.id), "aaguid": row.aaguid,
                                                            "authenticator": name, "reason": reason,
                                                            "metadata_no": store.no})
                await self._email_owner(
                    conn, row.account_id, subject="Replace one of your security keys",
                    body=(f"The FIDO Alliance reports the authenticator model {name} as {reason}. Register a "
                          "new security key or passkey for {username} and remove the old one."))
        if flagged:
            log.warning("metadata BLOB no. %d marked %d credentials at risk", store.no, len(flagged))
        return len(flagged)

    # ---- shared steps ------------------------------------------------------------------

    def _challenge_window(self) -> tuple[bytes, datetime]:
        return self.method.new_challenge(), self.ctx.clock.now() + timedelta(seconds=self.settings.challenge_ttl)

    async def _take_challenge(self, flow_token: str, *, kinds: tuple[str, ...],
                              session_id: uuid.UUID | None = None) -> tuple[FlowRow, bytes]:
        """Load the flow and take its challenge in a transaction of its own, committed before
        anything is verified: whatever happens next, this challenge cannot be used again."""
        async with self.ctx.db.transaction() as conn:
            flow = await load_flow(self.ctx, conn, flow_token, kinds=kinds)
            if session_id is not None and flow.session_id != session_id:
                raise FlowExpired(log_detail=f"flow {flow.id} belongs to another session")
            taken = await flows.consume_challenge(conn, flow.id)
        return flow, self._check_taken(taken, flow)

    def _check_taken(self, taken: tuple[bytes, datetime | None] | None, flow: FlowRow) -> bytes:
        if taken is None:
            raise ChallengeExpired(log_detail=f"challenge of flow {flow.id} already used")
        challenge, expires_at = taken
        if expires_at is None or self.ctx.clock.now() >= expires_at:
            raise ChallengeExpired(log_detail=f"challenge of flow {flow.id} expired")
        return challenge

    async def _credential_for(self, response: AssertionResponse, *, account_id: uuid.UUID | None,
                              allowed: Sequence[str] | None) -> tuple[CredentialRow, AccountRow, EnrolledFactors]:
        """WebAuthn L3 §7.2 steps 5-7: the credential must be one we offered (when we named the
        user) and belong to the account the user handle names (when there is one)."""
        async with self.ctx.db.read() as conn:
            row = await credentials.get_by_credential_id(conn, response.credential_id)
            if row is None:
                raise UnknownCredential(log_detail="no such credential ID")
            if account_id is not None and row.account_id != account_id:
                raise UnknownCredential(log_detail=f"credential {row.id} belongs to another account")
            if allowed is not None and b64url_encode(response.credential_id) not in allowed:
                raise UnknownCredential(log_detail=f"credential {row.id} was not in allowCredentials")
            found = await accounts.get_with_factors(conn, row.account_id, self.ctx.clock.now())
        if found is None:
            raise UnknownCredential(log_detail="credential owner vanished")
        account, factors = found
        handle = response.user_handle
        if handle is not None and (account.webauthn_user_id is None or handle != account.webauthn_user_id):
            raise UnknownCredential(log_detail=f"user handle does not name the owner of credential {row.id}")
        if account_id is None and allowed is None and handle is None:
            # Usernameless: nothing but the user handle ties the assertion to an account.
            raise UnknownCredential(log_detail="usernameless assertion without a user handle")
        return row, account, factors

    def _verify_use(self, row: CredentialRow, response: AssertionResponse, challenge: bytes,
                    uv: UserVerification) -> VerifiedAssertion:
        verified = self.method.verify_assertion(response, expected_challenge=challenge, public_key=row.public_key,
                                                require_uv=uv == "required")
        now = self.ctx.clock.now()
        if row.revoked_at is not None:
            raise CredentialRevoked(log_detail=f"credential {row.id} revoked ({row.revoked_reason})")
        if row.expires_at <= now:
            raise CredentialExpired(log_detail=f"credential {row.id} expired at {row.expires_at.isoformat()}")
        if row.clone_flagged_at is not None:
            raise PossibleClone(log_detail=f"credential {row.id} was flagged as cloned before")
        # WebAuthn L3 §7.2 step 19: backup eligibility is fixed for a credential's life.
        if verified.backup_eligible != row.backup_eligible:
            raise WebAuthnFailed(log_detail=f"credential {row.id}: BE changed from {row.backup_eligible}")
        return verified

    async def _flag_clone(self, row: CredentialRow, verified: VerifiedAssertion, client: ClientInfo) -> PossibleClone:
        """Record a counter regression in a transaction of its own (the request's own work is
        rolled back by the refusal) and return the refusal to raise."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            await credentials.flag_clone(conn, row.id, now)
            await events.insert_event(conn, type="webauthn_clone_flagged", account_id=row.account_id, now=now,
                                      ip=client.ip, user_agent=client.user_agent,
                                      details={"credential_id": str(row.id), "stored_sign_count": row.sign_count,
                                               "received_sign_count": verified.sign_count})
            await self._email_owner(
                conn, row.account_id, subject="A security key of yours may be cloned",
                body=("A sign-in to {username} used a security key whose signature counter went backwards, "
                      "which happens when a key is copied. The key was blocked; remove it and register a new one."))
        return PossibleClone(log_detail=f"credential {row.id}: counter {verified.sign_count} <= {row.sign_count}")

    async def _check_counter(self, row: CredentialRow, verified: VerifiedAssertion, client: ClientInfo) -> None:
        # WebAuthn L3 §7.2 step 23 (signature counter), checked only after the signature verified.
        if is_counter_regression(stored=row.sign_count, received=verified.sign_count):
            raise await self._flag_clone(row, verified, client)

    async def _record_use(self, conn: AsyncConnection, row: CredentialRow, verified: VerifiedAssertion,
                          client: ClientInfo, purpose: str) -> None:
        now = self.ctx.clock.now()
        if not await credentials.record_use(conn, row.id, sign_count=verified.sign_count,
                                            backup_state=verified.backup_state, now=now):
            raise _CounterRace()
        if verified.backup_state != row.backup_state:
            await events.insert_event(conn, type="webauthn_backup_state_changed", account_id=row.account_id,
                                      now=now, ip=client.ip, user_agent=client.user_agent,
                                      details={"credential_id": str(row.id), "backup_state": verified.backup_state,
                                               "purpose": purpose})

    async def _use(self, row: CredentialRow, verified: VerifiedAssertion, client: ClientInfo, purpose: str,
                   then: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``then(conn)`` in one transaction with the credential's use recorded; a lost
        counter race becomes a clone report in its own transaction."""
        await self._check_counter(row, verified, client)
        try:
            async with self.ctx.db.transaction() as conn:
                await self._record_use(conn, row, verified, client, purpose)
                return await then(conn)
        except _CounterRace:
            # The conditional update lost. If the credential was revoked meanwhile, that is
            # the reason, not a cloned key.
            async with self.ctx.db.read() as conn:
                current = await credentials.get_for_account(conn, row.account_id, row.id)
            if current is None or current.revoked_at is not None:
                raise CredentialRevoked(log_detail=f"credential {row.id} revoked during the assertion") from None
            raise await self._flag_clone(row, verified, client) from None

    def _judge(self, registration: VerifiedRegistration) -> AttestationVerdict:
        return self.policy.judge(registration, metadata=self.metadata, now=self.ctx.clock.now())

    async def _store_credential(self, conn: AsyncConnection, *, account: AccountRow, registration: VerifiedRegistration,
                                verdict: AttestationVerdict, kind: str, nickname: str | None,
                                device_id: uuid.UUID | None, client: ClientInfo) -> CredentialRow:
        """WebAuthn L3 §7.1 steps 24-27. A credential ID already registered is refused, except
        that this account may re-register a credential of its own that expired or was
        revoked: the old row is replaced (DESIGN §5, "must be re-registered")."""
        now = self.ctx.clock.now()
        existing = await credentials.get_by_credential_id(conn, registration.credential_id)
        if existing is not None:
            if existing.account_id != account.id or existing.usable(now):
                raise AlreadyRegistered(log_detail=f"credential ID already registered as {existing.id}")
            await credentials.delete_credential(conn, existing.id)
            await events.insert_event(conn, type="webauthn_credential_replaced", account_id=account.id, now=now,
                                      ip=client.ip, details={"credential_id": str(existing.id),
                                                             "expired": existing.expires_at <= now,
                                                             "revoked": existing.revoked_at is not None})
        row = await credentials.insert_credential(
            conn, account_id=account.id, credential_id=registration.credential_id,
            public_key=registration.public_key, sign_count=registration.sign_count,
            transports=list(registration.transports), aaguid=registration.aaguid, kind=kind,
            attestation_format=registration.fmt, attestation_trust=verdict.trust,
            authenticator_name=verdict.authenticator_name, discoverable=registration.discoverable,
            backup_eligible=registration.backup_eligible, backup_state=registration.backup_state,
            user_verified=registration.user_verified, nickname=nickname, now=now,
            expires_at=now + timedelta(days=self.settings.lifetime_days(kind)), device_id=device_id)
        await events.insert_event(conn, type="webauthn_registered", account_id=account.id, now=now, ip=client.ip,
                                  user_agent=client.user_agent, device_id=device_id,
                                  details={"credential_id": str(row.id), "kind": kind, "aaguid": row.aaguid,
                                           "format": row.attestation_format, "trust": row.attestation_trust,
                                           "discoverable": row.discoverable, "backup_eligible": row.backup_eligible})
        return row

    # ---- passkey sign-up ---------------------------------------------------------------

    async def begin_signup(self, *, username: str, display_name: str | None, email: str | None,
                           client: ClientInfo) -> Ceremony:
        await self._apply_pending_metadata()
        name = valid_username(username)
        mail = valid_email(email)
        display = valid_display_name(display_name, name)
        async with self.ctx.db.read() as conn:
            if await accounts.username_exists(conn, name):
                raise UsernameTaken()
        handle = self.method.new_user_handle()
        challenge, expires = self._challenge_window()
        options = self.method.registration_options(challenge=challenge, user_handle=handle, user_name=name,
                                                   display_name=display, kind="passkey", exclude=[])
        async with self.ctx.db.transaction() as conn:
            flow = await create_flow(self.ctx, conn, kind=SIGNUP_FLOW, state=PENDING, account_id=None, client=client,
                                     challenge=challenge, challenge_expires_at=expires,
                                     data={"username": name, "display_name": display, "email": mail,
                                           "user_handle": b64url_encode(handle), "kind": "passkey"})
        return Ceremony(flow_token=flow.token, options=options)

    async def finish_signup(self, *, flow_token: str, credential: Any, client: ClientInfo) -> SignupResult:
        response = parse_registration(credential)
        await self._apply_pending_metadata()
        flow, challenge = await self._take_challenge(flow_token, kinds=(SIGNUP_FLOW,))
        registration = self.method.verify_registration(response, expected_challenge=challenge,
                                                       now=self.ctx.clock.now(), resident_key_required=True)
        verdict = self._judge(registration)
        data = flow.data
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            if await credentials.get_by_credential_id(conn, registration.credential_id) is not None:
                raise AlreadyRegistered(log_detail="sign-up with a credential ID registered elsewhere")
            account = await accounts.insert_account(
                conn, username=data["username"], display_name=data["display_name"], email=data.get("email"),
                password_hash=None, now=now, webauthn_user_id=b64url_decode(data["user_handle"]))
            await events.insert_event(conn, type="account_created", account_id=account.id, now=now, ip=client.ip,
                                      user_agent=client.user_agent, details={"method": "passkey"})
            proof = assertion_proof(user_verified=registration.user_verified,
                                    backup_eligible=registration.backup_eligible)
            issued = await issue_session(self.ctx, self.sessions, conn, account=account, proofs=[proof],
                                         client=client, auth_time=now, new_device_is_news=False)
            row = await self._store_credential(conn, account=account, registration=registration, verdict=verdict,
                                               kind="passkey", nickname=None, device_id=issued.row.device_id,
                                               client=client)
            await finish_flow(conn, flow)
        return SignupResult(account=account, credential=row, session=issued)

    # ---- passkey-first login -----------------------------------------------------------

    async def begin_login(self, *, username: str | None, client: ClientInfo) -> Ceremony:
        """With a username, ``allowCredentials`` lists that account's unrevoked credentials; an
        unknown username (or one without credentials) gets a stable decoy list, so the
        answer does not tell who has an account. Without one, the list is empty and any
        discoverable credential may answer (usernameless, conditional UI)."""
        await self._apply_pending_metadata()
        allow: list[Descriptor] = []
        account_id: uuid.UUID | None = None
        if username is not None:
            name = normalize_username(username)
            async with self.ctx.db.read() as conn:
                account = await accounts.get_by_username(conn, name)
                # Expired credentials are listed too: their holder then hears ``credential_expired``
                # (register again) instead of a browser's bare "no matching key".
                rows = await credentials.list_for_account(conn, account.id) if account else []
            if account is not None and rows:
                allow, account_id = _descriptors(rows), account.id
            else:
                allow = [Descriptor(id=self.ctx.keyring.mac(b"webauthn-decoy\0" + name.encode("utf-8")),
                                    transports=("usb", "nfc", "internal", "hybrid"))]
        challenge, expires = self._challenge_window()
        options = self.method.authentication_options(challenge=challenge, allow=allow, user_verification="preferred")
        async with self.ctx.db.transaction() as conn:
            flow = await create_flow(self.ctx, conn, kind=LOGIN_FLOW, state=PENDING, account_id=account_id,
                                     client=client, challenge=challenge, challenge_expires_at=expires,
                                     data={"webauthn": {"uv": "preferred", "username": username is not None,
                                                        "allow": [b64url_encode(d.id) for d in allow]}})
        return Ceremony(flow_token=flow.token, options=options)

    async def finish_login(self, *, flow_token: str, credential: Any, client: ClientInfo) -> IssuedSession:
        """A session when the assertion reaches the AAL the account needs (DESIGN §4: an
        account with two ways to sign in must use two); otherwise 401 ``mfa_required`` with a
        login flow for the remaining factors."""
        response = parse_assertion(credential)
        flow, challenge = await self._take_challenge(flow_token, kinds=(LOGIN_FLOW,))
        meta: Mapping[str, Any] = flow.data.get("webauthn") or {}
        allowed = list(meta.get("allow", [])) if meta.get("username") else None
        row, account, factors = await self._credential_for(response, account_id=flow.account_id, allowed=allowed)
        verified = self._verify_use(row, response, challenge, _uv_of(flow))
        if account.status != "active":
            raise AccountDisabled()
        proof = assertion_proof(user_verified=verified.user_verified, backup_eligible=verified.backup_eligible)
        now = self.ctx.clock.now()
        pending: list[MfaRequired] = []

        async def then(conn: AsyncConnection) -> IssuedSession | None:
            await finish_flow(conn, flow)
            if proof.aal >= required_login_aal(factors):
                return await issue_session(self.ctx, self.sessions, conn, account=account, proofs=[proof],
                                           client=client, auth_time=now)
            # An account with a password must give it: a key without user verification plus
            # another "something you have" (a printed recovery code, a phone) is not what
            # DESIGN §4 means by two factors for an account that knows a secret.
            if not factors.password and [m for m in second_factor_methods(factors) if m != "webauthn"]:
                pending.append(await self.login.start_mfa(conn, account, factors, [proof], client, auth_time=now,
                                                          exclude=("webauthn",)))
            return None

        issued = await self._use(row, verified, client, "login", then)
        if issued is not None:
            return issued
        if pending:
            raise pending[0]
        # A password account and a key without user verification: the key is the second
        # factor, so the password must come first (POST /login/password, then this key).
        raise MfaRequired("Sign in with your password; your security key is the second step",
                          extra={"methods": ["password"]},
                          log_detail="assertion without UV on an account that has a password")

    # ---- WebAuthn as the second step of a password login ------------------------------

    async def begin_mfa(self, *, flow_token: str) -> Ceremony:
        await self._apply_pending_metadata()
        challenge, expires = self._challenge_window()
        async with self.ctx.db.transaction() as conn:
            flow, account, _ = await self.login.load_mfa_flow(conn, flow_token, "webauthn")
            rows = await credentials.list_for_account(conn, account.id, usable_at=self.ctx.clock.now())
            if not rows:
                raise NotEnrolled(log_detail="no usable WebAuthn credential for the second step")
            options = self.method.authentication_options(challenge=challenge, allow=_descriptors(rows),
                                                         user_verification="discouraged")
            data = {**flow.data, "webauthn": {"uv": "discouraged"}}
            await flows.set_challenge(conn, flow.id, challenge, expires, data=data)
        return Ceremony(flow_token=None, options=options)

    async def finish_mfa(self, *, flow_token: str, credential: Any, client: ClientInfo) -> IssuedSession:
        response = parse_assertion(credential)
        async with self.ctx.db.transaction() as conn:
            flow, _, _ = await self.login.load_mfa_flow(conn, flow_token, "webauthn")
            taken = await flows.consume_challenge(conn, flow.id)
        challenge = self._check_taken(taken, flow)
        row, account, _ = await self._credential_for(response, account_id=flow.account_id, allowed=None)
        verified = self._verify_use(row, response, challenge, _uv_of(flow))
        proof = assertion_proof(user_verified=verified.user_verified, backup_eligible=verified.backup_eligible)

        async def then(conn: AsyncConnection) -> IssuedSession:
            return await self.login.finish_mfa(conn, flow, account, proof, client)

        return await self._use(row, verified, client, "mfa", then)

    # ---- step-up on the same session --------------------------------------------------

    async def begin_step_up(self, auth: AuthContext, *, client: ClientInfo) -> Ceremony:
        await self._apply_pending_metadata()
        async with self.ctx.db.read() as conn:
            rows = await credentials.list_for_account(conn, auth.account.id, usable_at=self.ctx.clock.now())
        if not rows:
            raise NotEnrolled(log_detail="step-up by WebAuthn without a usable credential")
        challenge, expires = self._challenge_window()
        options = self.method.authentication_options(challenge=challenge, allow=_descriptors(rows),
                                                     user_verification="preferred")
        async with self.ctx.db.transaction() as conn:
            flow = await create_flow(self.ctx, conn, kind=STEP_UP_FLOW, state=PENDING, account_id=auth.account.id,
                                     client=client, session_id=auth.session.id, challenge=challenge,
                                     challenge_expires_at=expires, data={"webauthn": {"uv": "preferred"}})
        return Ceremony(flow_token=flow.token, options=options)

    async def finish_step_up(self, auth: AuthContext, *, flow_token: str, credential: Any,
                             client: ClientInfo) -> StepUpResult:
        response = parse_assertion(credential)
        flow, challenge = await self._take_challenge(flow_token, kinds=(STEP_UP_FLOW,), session_id=auth.session.id)
        row, _, _ = await self._credential_for(response, account_id=auth.account.id, allowed=None)
        verified = self._verify_use(row, response, challenge, _uv_of(flow))
        proof: Proof = assertion_proof(user_verified=verified.user_verified, backup_eligible=verified.backup_eligible)

        async def then(conn: AsyncConnection) -> None:
            await finish_flow(conn, flow)
            await self.stepup.record(conn, auth, proof)

        await self._use(row, verified, client, "step_up", then)
        aal, amr = after_step_up(auth.session.aal, list(auth.session.amr), proof)
        return StepUpResult(aal=aal, amr=amr, last_mfa_at=self.ctx.clock.now())

    # ---- adding a credential while signed in ------------------------------------------

    async def begin_register(self, auth: AuthContext, *, kind: str, nickname: str | None,
                             client: ClientInfo) -> Ceremony:
        """Options for a new passkey or security key. The caller has passed the step-up
        check (scope ``add_factor``); the flow is bound to this session."""
        await self._apply_pending_metadata()
        credential_kind = valid_kind(kind)
        name = valid_nickname(nickname)
        account = auth.account
        async with self.ctx.db.read() as conn:
            rows = await credentials.list_for_account(conn, account.id, usable_at=self.ctx.clock.now())
        handle = account.webauthn_user_id or self.method.new_user_handle()
        challenge, expires = self._challenge_window()
        options = self.method.registration_options(challenge=challenge, user_handle=handle, user_name=account.username,
                                                   display_name=account.display_name, kind=credential_kind,
                                                   exclude=_descriptors(rows))
        async with self.ctx.db.transaction() as conn:
            flow = await create_flow(self.ctx, conn, kind=REGISTER_FLOW, state=PENDING, account_id=account.id,
                                     client=client, session_id=auth.session.id, challenge=challenge,
                                     challenge_expires_at=expires,
                                     data={"kind": credential_kind, "nickname": name,
                                           "user_handle": b64url_encode(handle)})
        return Ceremony(flow_token=flow.token, options=options)

    async def finish_register(self, auth: AuthContext, *, flow_token: str, credential: Any,
                              client: ClientInfo) -> CredentialRow:
        response = parse_registration(credential)
        await self._apply_pending_metadata()
        flow, challenge = await self._take_challenge(flow_token, kinds=(REGISTER_FLOW,), session_id=auth.session.id)
        kind = valid_kind(str(flow.data.get("kind")))
        registration = self.method.verify_registration(response, expected_challenge=challenge,
                                                       now=self.ctx.clock.now(),
                                                       resident_key_required=kind == "passkey")
        verdict = self._judge(registration)
        account = auth.account
        async with self.ctx.db.transaction() as conn:
            await accounts.set_webauthn_user_id(conn, account.id, b64url_decode(flow.data["user_handle"]))
            row = await self._store_credential(conn, account=account, registration=registration, verdict=verdict,
                                               kind=kind, nickname=flow.data.get("nickname"),
                                               device_id=auth.session.device_id, client=client)
            await finish_flow(conn, flow)
            if account.email:
                await self.ctx.outbox.enqueue(
                    conn, channel="email", to=account.email, subject="A security key was added to your account",
                    body=f"A {kind} ({row.authenticator_name or 'unknown model'}) was registered for "
                         f"{account.username} at {row.created_at.isoformat(timespec='seconds')}. If this was not "
                         f"you, remove it and change your password.")
        return row

    # ---- management --------------------------------------------------------------------

    async def list_credentials(self, auth: AuthContext) -> CredentialList:
        await self._apply_pending_metadata()
        async with self.ctx.db.read() as conn:
            rows = await credentials.list_for_account(conn, auth.account.id)
            summary = await summarize(conn, auth.account.id)
        return CredentialList(webauthn=rows, factors=summary)

    async def rename(self, auth: AuthContext, credential_id: uuid.UUID, *, nickname: str | None) -> CredentialRow:
        name = valid_nickname(nickname)
        async with self.ctx.db.transaction() as conn:
            if not await credentials.rename(conn, account_id=auth.account.id, row_id=credential_id, nickname=name):
                raise NotFound("no such credential")
            row = await credentials.get_for_account(conn, auth.account.id, credential_id)
        assert row is not None  # noqa: S101 - just updated in this transaction
        return row

    async def _live_credential_locked(self, conn: AsyncConnection, account_id: uuid.UUID,
                                      credential_id: uuid.UUID) -> CredentialRow:
        """The account's unrevoked credential, with the account row locked: removals of one
        account's factors run one at a time, so two cannot each see the other's factor
        still there and leave the account with none."""
        await accounts.lock_account(conn, account_id)
        row = await credentials.get_for_account(conn, account_id, credential_id)
        if row is None or row.revoked_at is not None:
            raise NotFound("no such credential")
        return row

    async def revoke(self, auth: AuthContext, credential_id: uuid.UUID, *, reason: str = "removed_by_user") -> None:
        """Refuse to remove the last way into the account (``last_factor``): a passkey-only
        account must keep one usable credential until it sets a password."""
        account_id = auth.account.id
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            row = await self._live_credential_locked(conn, account_id, credential_id)
            account = await accounts.get_account(conn, account_id)
            if (account is not None and account.password_hash is None and row.usable(now)
                    and await credentials.count_usable(conn, account_id, now, except_id=row.id) == 0):
                raise LastFactor(log_detail=f"credential {row.id} is the only way into a passwordless account")
            await credentials.revoke(conn, account_id=account_id, row_id=row.id, now=now, reason=reason)
            await events.insert_event(conn, type="webauthn_credential_revoked", account_id=account_id, now=now,
                                      ip=auth.session.ip, details={"credential_id": str(row.id), "reason": reason,
                                                                   "session_id": str(auth.session.id)})

    async def revoke_for_admin(self, admin: AuthContext, *, account_id: uuid.UUID, credential_id: uuid.UUID) -> None:
        """An admin removes a credential (a lost or compromised key). Unlike the user's own
        removal this may take the last way in: recovering such an account is then the
        admin's job, and a key that must go must go. The user is told by email."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            row = await self._live_credential_locked(conn, account_id, credential_id)
            await credentials.revoke(conn, account_id=account_id, row_id=row.id, now=now, reason="revoked_by_admin")
            await events.insert_event(conn, type="webauthn_credential_revoked", account_id=account_id, now=now,
                                      ip=admin.session.ip, details={"credential_id": str(row.id),
                                                                    "reason": "revoked_by_admin",
                                                                    "admin_id": str(admin.account.id)})
            await self._email_owner(
                conn, account_id, subject="A security key was removed from your account",
                body=(f"An administrator removed the {row.kind} {row.nickname or row.authenticator_name or ''} "
                      f"from {{username}} at {now.isoformat(timespec='seconds')}."))

    def expires_soon(self, row: CredentialRow) -> bool:
        return row.expires_at - self.ctx.clock.now() <= timedelta(days=self.settings.credential_warning_days)

    def well_known_origins(self) -> list[str]:
        """Origins for ``/.well-known/webauthn`` (related origin requests, L3 §5.11)."""
        origins = [*self.settings.origins, *self.settings.related_origins]
        return [o for o in dict.fromkeys(origins) if o.startswith(("https://", "http://"))]
