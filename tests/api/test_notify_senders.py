"""The webhook sender (DESIGN §7): the outbox message as JSON, POSTed to the operator's URL
with an HMAC-SHA256 signature in ``X-Authserver-Signature``; a failing endpoint is retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from sqlalchemy import select

from authserver.store.models import OutboxMessage
from tests.conftest import services_of
from tests.support.api import login, signup

SECRET = "webhook-secret-for-tests"


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    fail_next = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Recorder.fail_next:
            Recorder.fail_next -= 1
            self.send_response(503)
        else:
            Recorder.received.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def start_server() -> tuple[HTTPServer, str]:
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


async def test_webhook_delivers_signed_json_and_retries(make_client, clock):
    server, url = start_server()
    Recorder.received, Recorder.fail_next = [], 1
    try:
        client = await make_client(notify_sender="webhook", webhook_url=url, webhook_secret=SECRET)
        account, _ = await signup(client, email="hook@example.com")
        assert (await login(client, account["username"], X_Device_Id="another-device")).status_code == 200
        outbox = services_of(client).ctx.outbox
        assert await outbox.drain() == 0  # the endpoint answered 503: kept for a retry
        clock.advance(5)
        assert await outbox.drain() == 1
        headers, body = Recorder.received[-1]
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Authserver-Signature"], expected)
        message = json.loads(body)
        assert set(message) == {"id", "channel", "to", "subject", "body", "created_at"}
        assert message["channel"] == "email" and message["to"] == "hook@example.com"
        async with services_of(client).ctx.db.read() as conn:
            status, attempts = (await conn.execute(select(OutboxMessage.status, OutboxMessage.attempts)
                                                   .where(OutboxMessage.to == "hook@example.com"))).one()
        assert (status, attempts) == ("sent", 2)
    finally:
        server.shutdown()


class TinySmtp(threading.Thread):
    """Just enough of RFC 5321 for smtplib to hand over one message; it keeps what it got."""

    def __init__(self) -> None:
        import socket

        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.data = b""

    def run(self) -> None:
        conn, _ = self.sock.accept()
        f = conn.makefile("rwb")

        def reply(line: str) -> None:
            f.write(line.encode() + b"\r\n")
            f.flush()

        reply("220 tiny ESMTP")
        while line := f.readline():
            verb = line.strip().split(b" ")[0].upper()
            if verb in (b"EHLO", b"HELO"):
                reply("250 tiny")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                reply("250 ok")
            elif verb == b"DATA":
                reply("354 go on")
                while (chunk := f.readline()) != b".\r\n":
                    self.data += chunk
                reply("250 queued")
            elif verb == b"QUIT":
                reply("221 bye")
                break
        conn.close()
        self.sock.close()


async def test_smtp_sender_mails_the_message(make_client):
    smtp = TinySmtp()
    smtp.start()
    client = await make_client(notify_sender="smtp", smtp_host="127.0.0.1", smtp_port=smtp.port,
                               smtp_from="auth@example.com")
    account, _ = await signup(client, email="mail@example.com")
    assert (await login(client, account["username"], X_Device_Id="mail-device")).status_code == 200
    assert await services_of(client).ctx.outbox.drain() == 1
    smtp.join(timeout=10)
    text = smtp.data.decode()
    assert "To: mail@example.com" in text and "From: auth@example.com" in text
    assert "Subject: New sign-in to your account" in text
