"""The time at which attestation certificates are judged, taken from our injected clock.

Why this exists: py_webauthn checks attestation certificate paths with an OpenSSL
``X509Store`` built by ``_generate_new_cert_store()`` and checks the freshness of SafetyNet
responses with ``time.time()``; neither takes a time argument. Our policy is that all time
comes from the injected clock (STYLE.md §5), and recorded responses of real authenticators
(Apple, Android) carry certificates that were valid only when they were recorded. Both
library functions are named, module-level seams (the first is documented as such), so we
replace each once with a version that reads the verification time from a context
variable. Outside :func:`verification_time` they behave exactly as before (current time).

A ``ContextVar`` keeps concurrent requests apart: each asyncio task sees only the time
its own verification set.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from OpenSSL.crypto import X509Store

_VERIFY_AT: ContextVar[datetime | None] = ContextVar("authserver_webauthn_verify_at", default=None)

SAFETYNET_GRACE_MS = 10_000
"""How far a SafetyNet response's own timestamp may be from our time (py_webauthn's value)."""

_installed = False


def current_time() -> float:
    """Seconds since the epoch at which certificates are judged right now."""
    pinned = _VERIFY_AT.get()
    return pinned.timestamp() if pinned is not None else time.time()


def _cert_store() -> X509Store:
    store = X509Store()
    pinned = _VERIFY_AT.get()
    if pinned is not None:
        store.set_time(pinned)
    return store


def _check_safetynet_timestamp(timestamp_ms: int) -> None:
    """The response must have been made within the grace period around our time (SafetyNet
    attestation, WebAuthn L3 §8.5: "timestampMs is within an acceptable range")."""
    now_ms = int(current_time()) * 1000
    if timestamp_ms > now_ms + SAFETYNET_GRACE_MS:
        raise ValueError(f"SafetyNet timestamp {timestamp_ms} lies in the future (now {now_ms})")
    if timestamp_ms < now_ms - SAFETYNET_GRACE_MS:
        raise ValueError(f"SafetyNet timestamp {timestamp_ms} is too old (now {now_ms})")


def install() -> None:
    """Point py_webauthn's two time seams at our context variable; idempotent."""
    global _installed
    if _installed:
        return
    # ``webauthn.helpers.validate_certificate_chain`` is shadowed by the function of the same
    # name in the package ``__init__``, so fetch the module itself.
    chain_module: Any = importlib.import_module("webauthn.helpers.validate_certificate_chain")
    chain_module._generate_new_cert_store = _cert_store
    safetynet_module: Any = importlib.import_module("webauthn.registration.formats.android_safetynet")
    safetynet_module.verify_safetynet_timestamp = _check_safetynet_timestamp
    _installed = True


@contextmanager
def verification_time(when: datetime) -> Iterator[None]:
    """Judge certificates (and SafetyNet freshness) at ``when`` inside this block."""
    install()
    token = _VERIFY_AT.set(when)
    try:
        yield
    finally:
        _VERIFY_AT.reset(token)
