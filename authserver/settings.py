"""One Settings object, read once from ``AUTHSERVER_*`` environment variables and an
optional TOML file (the environment wins). Every field is a documented knob (README table);
defaults are safe for a first run on one machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from authserver.crypto import KeyRing, SecretKey, load_or_create_key_file, parse_keys

ENV_PREFIX = "AUTHSERVER_"


class SettingsError(Exception):
    """A configuration value cannot be used; raised at start-up, never per request."""


@dataclass(kw_only=True)
class Settings:
    # storage
    database_url: str = "sqlite+aiosqlite:///./authserver.db"
    database_pool_size: int = 10
    # relying party
    rp_id: str = "localhost"
    rp_name: str = "authserver"
    origins: list[str] = field(default_factory=lambda: ["http://localhost:8000"])
    related_origins: list[str] = field(default_factory=list)
    # secrets at rest
    secret_keys: str | None = None
    keys_file: str = "./authserver-keys"
    # notifications
    notify_sender: str = "file"
    outbox_file: str = "./outbox.jsonl"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_from: str = "authserver@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    admin_alert_to: str | None = None
    # client addresses
    trusted_proxies: list[str] = field(default_factory=list)
    country_header: str = "X-Country-Code"
    # attestation and metadata
    attestation: str = "none"
    attestation_policy: str = "none"
    attestation_allowlist: list[str] = field(default_factory=list)
    mds_blob_path: str | None = None
    mds_url: str | None = None
    mds_root_cert: str | None = None
    u2f_appid: str | None = None
    # policy numbers (DESIGN §5), seconds unless named otherwise
    challenge_ttl: int = 300
    flow_ttl: int = 600
    totp_algorithm: str = "SHA1"
    totp_digits: int = 6
    totp_period: int = 30
    totp_window: int = 1
    totp_issuer: str = "authserver"
    sms_code_length: int = 6
    sms_code_ttl: int = 600
    sms_max_tries: int = 3
    sms_sends_per_hour: int = 5
    email_code_length: int = 6
    email_code_ttl: int = 600
    email_code_max_tries: int = 3
    email_sends_per_hour: int = 5
    new_country_check: bool = True
    recovery_code_count: int = 10
    lockout_threshold: int = 3
    lockout_window: int = 300
    lockout_backoff: list[int] = field(default_factory=lambda: [30, 60, 120, 300])
    ip_failure_limit: int = 30
    ip_failure_window: int = 300
    credential_lifetime_days: int = 730
    passkey_lifetime_days: int | None = None
    security_key_lifetime_days: int | None = None
    credential_warning_days: int = 30
    session_absolute: int = 86400
    session_idle: int = 43200
    step_up_window: int = 300
    new_device_email: bool = True
    # HTTP
    cookie_secure: bool = True
    session_cookie: str = "authserver_session"
    device_cookie: str = "authserver_device"
    max_body_bytes: int = 65536
    introspect_secret: str | None = None
    static_dir: str | None = None
    # passwords (Argon2id; RFC 9106 "second recommended" parameters)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    password_min_length: int = 8
    log_level: str = "INFO"

    @classmethod
    def load(cls, *, config_file: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """TOML file first, then ``AUTHSERVER_*`` variables, then explicit overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
        if config_file:
            try:
                data = tomllib.loads(Path(config_file).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read config file {config_file}: {exc}") from exc
            data = data.get("authserver", data)
            for key, raw in data.items():
                values[key.lower()] = raw
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            env_name = ENV_PREFIX + f.name.upper()
            if env_name in env:
                values[f.name] = env[env_name]
        values.update(overrides)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        converted = {name: _convert(name, hints[name], raw) for name, raw in values.items()}
        settings = cls(**converted)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.attestation not in {"none", "indirect", "direct", "enterprise"}:
            raise SettingsError("AUTHSERVER_ATTESTATION must be none, indirect, direct or enterprise")
        if self.attestation_policy not in {"none", "any", "metadata", "allowlist"}:
            raise SettingsError("AUTHSERVER_ATTESTATION_POLICY must be none, any, metadata or allowlist")
        if self.notify_sender not in {"file", "smtp", "webhook", "log"}:
            raise SettingsError("AUTHSERVER_NOTIFY_SENDER must be file, smtp, webhook or log")
        if self.notify_sender == "webhook" and not (self.webhook_url and self.webhook_secret):
            raise SettingsError("the webhook sender needs AUTHSERVER_WEBHOOK_URL and AUTHSERVER_WEBHOOK_SECRET")
        if not 4 <= self.sms_code_length <= 8:
            raise SettingsError("AUTHSERVER_SMS_CODE_LENGTH must be 4..8")
        if not 4 <= self.email_code_length <= 8:
            raise SettingsError("AUTHSERVER_EMAIL_CODE_LENGTH must be 4..8")
        if self.totp_algorithm.upper() not in {"SHA1", "SHA256", "SHA512"}:
            raise SettingsError("AUTHSERVER_TOTP_ALGORITHM must be SHA1, SHA256 or SHA512")
        if self.totp_digits not in {6, 8}:
            raise SettingsError("AUTHSERVER_TOTP_DIGITS must be 6 or 8")
        if not self.origins:
            raise SettingsError("AUTHSERVER_ORIGINS needs at least one origin")
        if not self.lockout_backoff:
            raise SettingsError("AUTHSERVER_LOCKOUT_BACKOFF needs at least one duration")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise SettingsError(f"AUTHSERVER_TRUSTED_PROXIES: {proxy!r} is not an address or network") from exc

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def lifetime_days(self, kind: str) -> int:
        specific = self.passkey_lifetime_days if kind == "passkey" else self.security_key_lifetime_days
        return specific if specific is not None else self.credential_lifetime_days

    def keyring(self) -> KeyRing:
        keys: list[SecretKey]
        keys = parse_keys(self.secret_keys) if self.secret_keys else load_or_create_key_file(Path(self.keys_file))
        return KeyRing(keys)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for secret in ("secret_keys", "webhook_secret", "smtp_password", "introspect_secret"):
            if shown.get(secret):
                shown[secret] = "<hidden>"
        return f"Settings({shown!r})"


def _convert(name: str, hint: Any, raw: Any) -> Any:
    text = str(hint)
    try:
        if "list[int]" in text:
            items = raw if isinstance(raw, list) else [p for p in str(raw).split(",") if p.strip()]
            return [int(x) for x in items]
        if "list[str]" in text:
            items = raw if isinstance(raw, list) else [p.strip() for p in str(raw).split(",") if p.strip()]
            return [str(x) for x in items]
        if hint is bool or text.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"{raw!r} is not a boolean")
        if hint is int or text.startswith("int"):
            if raw in ("", None) and "None" in text:
                return None
            return int(raw)
        if "None" in text and raw in ("", None):
            return None
        return str(raw)
    except ValueError as exc:
        raise SettingsError(f"setting {name}: {exc}") from exc
