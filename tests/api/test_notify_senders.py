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
