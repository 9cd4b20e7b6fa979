from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authserver.store.models.base import Base
from authserver.store.types import UTCDateTime


class AccountCountry(Base):
    """A country an account has signed in from (as a trusted proxy reported it). Kept apart
    from devices, whose ``last_country`` follows a travelling laptop and forgets the rest."""

    __tablename__ = "account_countries"

    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
