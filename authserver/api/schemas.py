"""Request and response bodies (msgspec structs). Length limits here are the first line
against oversized input: nothing past them reaches a factor or the database."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

# No string we accept may hold NUL: PostgreSQL text cannot store it, and no legitimate
# username, password or code contains one. (Lone surrogates are already refused by msgspec.)
NO_NUL = r"^[^\x00]*$"

Username = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]
LoginName = Annotated[str, Meta(min_length=1, max_length=256, pattern=NO_NUL)]
Password = Annotated[str, Meta(min_length=1, max_length=1024, pattern=NO_NUL)]
DisplayName = Annotated[str, Meta(max_length=128, pattern=NO_NUL)]
Email = Annotated[str, Meta(max_length=254, pattern=NO_NUL)]
Token = Annotated[str, Meta(min_length=1, max_length=256, pattern=NO_NUL)]
Code = Annotated[str, Meta(min_length=1, max_length=32, pattern=NO_NUL)]
Text = Annotated[str, Meta(max_length=256, pattern=NO_NUL)]


class Struct(msgspec.Struct, kw_only=True, omit_defaults=False):
    pass


# ---- requests -----------------------------------------------------------------------------

class SignupIn(Struct):
    username: Username
    display_name: DisplayName | None = None
    email: Email | None = None
    password: Password | None = None


class PasswordLoginIn(Struct):
    username: LoginName
    password: Password


class PasswordChangeIn(Struct):
    new_password: Password
    current_password: Password | None = None


class IntrospectIn(Struct):
    token: Token


class FlowCodeIn(Struct):
    flow_token: Token
    code: Code


class FlowTokenIn(Struct):
    flow_token: Token


# ---- responses ----------------------------------------------------------------------------

class SessionOut(Struct):
    token: str
    expires_at: datetime
    aal: int
    amr: list[str]


class AccountOut(Struct):
    id: str
    username: str
    display_name: str
    email: str | None
    role: str
    status: str
    has_password: bool
    created_at: datetime


class SignupOut(Struct):
    account: AccountOut
    session: SessionOut


class LoginOut(Struct):
    session: SessionOut


class SessionInfoOut(Struct):
    account: AccountOut
    session_id: str
    aal: int
    amr: list[str]
    auth_time: datetime
    last_mfa_at: datetime | None
    expires_at: datetime


class SessionItemOut(Struct):
    id: str
    aal: int
    amr: list[str]
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionsOut(Struct):
    sessions: list[SessionItemOut]


class IntrospectOut(Struct, omit_defaults=True):
    active: bool
    account_id: str | None = None
    username: str | None = None
    session_id: str | None = None
    aal: int | None = None
    amr: list[str] | None = None
    exp: int | None = None


class PasswordChangedOut(Struct):
    sessions_revoked: int


class HealthOut(Struct):
    status: str


class ReadyOut(Struct):
    status: str
    database: str
    migration: str | None
    expected_migration: str


class DeviceOut(Struct):
    id: str
    kind: str
    user_agent: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    last_ip: str | None
    last_country: str | None


class DevicesOut(Struct):
    devices: list[DeviceOut]


class EventOut(Struct):
    id: int
    type: str
    account_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    created_at: datetime


class EventsOut(Struct):
    events: list[EventOut]
    next_cursor: str | None
