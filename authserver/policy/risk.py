"""Who is asking, as far as we can trust it: address, country, device.

The API layer fills :class:`ClientInfo` from the request (honouring forwarded headers only
from trusted proxies); flows use it for devices, events and risk decisions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None
    country: str | None
    device_kind: str  # "browser" (device cookie) or "rest" (X-Device-Id)
    device_secret: str  # the cookie value or X-Device-Id; only its hash is stored
    new_device_cookie: str | None = None  # set when the API must hand a fresh cookie to a browser

    def __repr__(self) -> str:
        return f"ClientInfo(ip={self.ip!r}, kind={self.device_kind!r})"

    @property
    def device_key(self) -> bytes:
        if self.device_kind == "rest":
            material = f"rest\0{self.device_secret}\0{self.user_agent or ''}"
        else:
            material = f"browser\0{self.device_secret}"
        return hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest()


UNKNOWN_CLIENT = ClientInfo(ip=None, user_agent=None, country=None, device_kind="rest", device_secret="unknown")


def is_new_country(country: str | None, known: set[str]) -> bool:
    """A sign-in from a country this account has never used, when we know where it usually
    is (the first country seen is not "new": there is nothing to compare with)."""
    return country is not None and bool(known) and country not in known
