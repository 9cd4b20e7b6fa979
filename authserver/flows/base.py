"""Flow rows as the client sees them: an opaque token for a server-side state machine.

A flow only moves forward; one that is ``done`` or past ``expires_at`` is dead and answers
``flow_expired``. Only the token's hash is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.crypto import hash_token, new_token
from authserver.errors import FlowExpired, MfaRequired
from authserver.methods.base import Proof
from authserver.policy.risk import ClientInfo
from authserver.store.repositories import flows
from authserver.store.repositories.flows import FlowRow

FLOW_TOKEN_PREFIX = "asf_"
DONE = "done"


@dataclass(frozen=True, kw_only=True)
class NewFlow:
    token: str
    row: FlowRow

    def __repr__(self) -> str:
        return f"NewFlow(id={self.row.id}, kind={self.row.kind!r})"


async def create_flow(ctx: AppContext, conn: AsyncConnection, *, kind: str, state: str,
                      account_id: uuid.UUID | None, client: ClientInfo | None, ttl: int | None = None,
                      **values: Any) -> NewFlow:
    now = ctx.clock.now()
    token = new_token(FLOW_TOKEN_PREFIX)
    row = await flows.insert_flow(
        conn, token_hash=hash_token(token), kind=kind, state=state, account_id=account_id, now=now,
        expires_at=now + timedelta(seconds=ttl or ctx.settings.flow_ttl),
        ip=client.ip if client else None, user_agent=(client.user_agent or "")[:512] if client else None,
        **values)
    return NewFlow(token=token, row=row)


async def load_flow(ctx: AppContext, conn: AsyncConnection, token: str, *, kinds: tuple[str, ...]) -> FlowRow:
    if not token or len(token) > 256:
        raise FlowExpired(log_detail="no flow token")
    row = await flows.get_by_token_hash(conn, hash_token(token))
    if row is None:
        raise FlowExpired(log_detail="unknown flow token")
    if row.kind not in kinds:
        raise FlowExpired(log_detail=f"flow of kind {row.kind} used for {kinds}")
    if row.state == DONE:
        raise FlowExpired(log_detail="flow already finished")
    if ctx.clock.now() >= row.expires_at:
        raise FlowExpired(log_detail="flow expired")
    return row


async def finish_flow(conn: AsyncConnection, row: FlowRow, **values: Any) -> None:
    """Mark the flow done; a second request racing for the same flow gets ``flow_expired``."""
    if not await flows.advance(conn, row.id, from_state=row.state, to_state=DONE, challenge=None, **values):
        raise FlowExpired(log_detail="flow finished by a concurrent request")


def proofs_to_json(proofs: list[Proof]) -> list[dict[str, Any]]:
    return [{"method": p.method, "amr": sorted(p.amr), "aal": p.aal, "class": p.factor_class} for p in proofs]


def proofs_from_json(data: list[dict[str, Any]]) -> list[Proof]:
    return [Proof(method=d["method"], amr=frozenset(d["amr"]), aal=int(d["aal"]), factor_class=d["class"])
            for d in data]


def mfa_required(flow_token: str, methods: list[str], expires_at: datetime, *,
                 reason: str | None = None) -> MfaRequired:
    """The 401 that opens the next step of a login (DESIGN §6)."""
    extra: dict[str, Any] = {"flow_token": flow_token, "methods": methods, "expires_at": iso(expires_at)}
    if reason:
        extra["reason"] = reason
    return MfaRequired(extra=extra)  # MfaRequired names the methods in WWW-Authenticate


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
