"""Where delivered messages go: a JSON-lines file (default; how developers and tests read
codes), SMTP, or an HMAC-signed HTTP webhook (an SMS provider or the operator's bridge)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import httpx

from authserver.settings import Settings
from authserver.store.repositories.outbox import OutboxRow

log = logging.getLogger(__name__)


def message_json(message: OutboxRow) -> dict[str, Any]:
    return {
        "id": str(message.id), "channel": message.channel, "to": message.to, "subject": message.subject,
        "body": message.body, "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
    }


class Sender(Protocol):
    async def send(self, message: OutboxRow) -> None: ...


class FileSender:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def send(self, message: OutboxRow) -> None:
        line = json.dumps(message_json(message), separators=(",", ":")) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


class LogSender:
    """Logs that a message went out, never its body (it may hold a code)."""

    async def send(self, message: OutboxRow) -> None:
        log.info("notification %s on %s to %s: %s", message.id, message.channel, message.to, message.subject)


class WebhookSender:
    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret.encode()

    async def send(self, message: OutboxRow) -> None:
        body = json.dumps(message_json(message), separators=(",", ":")).encode()
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self.url, content=body, headers={
                "Content-Type": "application/json", "X-Authserver-Signature": f"sha256={signature}"})
        response.raise_for_status()


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fallback = LogSender()

    async def send(self, message: OutboxRow) -> None:
        if message.channel not in ("email", "admin"):
            await self.fallback.send(message)
            return
        await asyncio.to_thread(self._send, message)

    def _send(self, message: OutboxRow) -> None:
        s = self.settings
        email = EmailMessage()
        email["From"] = s.smtp_from
        email["To"] = message.to
        email["Subject"] = message.subject
        email.set_content(message.body)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password)
            smtp.send_message(email)


def make_sender(settings: Settings) -> Sender:
    if settings.notify_sender == "file":
        return FileSender(settings.outbox_file)
    if settings.notify_sender == "smtp":
        return SmtpSender(settings)
    if settings.notify_sender == "webhook":
        assert settings.webhook_url and settings.webhook_secret  # noqa: S101 - Settings.validate checked
        return WebhookSender(settings.webhook_url, settings.webhook_secret)
    return LogSender()
