"""Everything a request needs, built once per app in ``create_app`` and injected.

Handlers receive this object; nothing reads module-level globals, so two apps (two
"replicas" in a test) can live in one process side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from authserver.clock import Clock
from authserver.crypto import KeyRing
from authserver.methods.password import PasswordMethod
from authserver.notify.outbox import Outbox
from authserver.policy.ratelimit import Regulator
from authserver.settings import Settings
from authserver.store.db import Database


@dataclass(kw_only=True)
class AppContext:
    settings: Settings
    clock: Clock
    db: Database
    keyring: KeyRing
    passwords: PasswordMethod
    regulator: Regulator
    outbox: Outbox

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock, keyring: KeyRing | None = None) -> AppContext:
        from authserver.notify.senders import make_sender

        db = Database(settings.database_url, pool_size=settings.database_pool_size)
        return cls(
            settings=settings, clock=clock, db=db, keyring=keyring or settings.keyring(),
            passwords=PasswordMethod(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
                                     parallelism=settings.argon2_parallelism,
                                     min_length=settings.password_min_length),
            regulator=Regulator(threshold=settings.lockout_threshold, window=settings.lockout_window,
                                backoff=settings.lockout_backoff, ip_limit=settings.ip_failure_limit,
                                ip_window=settings.ip_failure_window),
            outbox=Outbox(db, make_sender(settings), clock, admin_alert_to=settings.admin_alert_to),
        )
