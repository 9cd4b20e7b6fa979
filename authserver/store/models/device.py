from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authserver.store.models.base import Base
from authserver.store.types import UTCDateTime


class Device(Base):
    """Something a user signs in from: a browser's device cookie, or a REST client's
    ``X-Device-Id`` with its user agent. ``device_key`` is a hash of that identity."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("account_id", "device_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("accounts.id", ondelete="CASCADE"))
    device_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    kind: Mapped[str] = mapped_column(String(16))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_ip: Mapped[str | None] = mapped_column(String(45))
    last_country: Mapped[str | None] = mapped_column(String(2))
