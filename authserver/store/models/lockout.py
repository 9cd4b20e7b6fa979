from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver.store.models.base import Base
from authserver.store.types import UTCDateTime


class Lockout(Base):
    """Failure counter for one key (``account:<id>`` or ``ip:<addr>``), kept in the
    database so every replica sees the same count (DESIGN §8)."""

    __tablename__ = "lockouts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_level: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
