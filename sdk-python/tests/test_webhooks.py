"""earshot.verify_webhook against the reference Standard Webhooks library (standardwebhooks on
PyPI): what it signs verifies, a tampered body, an old timestamp or another secret does not, and
any secret of a rotation passes."""

import base64
import json
import os
import time
from datetime import datetime, timezone
from typing import Dict

import pytest
from standardwebhooks.webhooks import Webhook

import earshot


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signed(key: str, body: str, at: datetime, msg_id: str = "msg_1") -> Dict[str, str]:
    signature = Webhook(key).sign(msg_id, at, body)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(at.timestamp())),
        "Webhook-Signature": signature,
    }


BODY = json.dumps({"type": "call.processed", "timestamp": "2026-12-01T00:00:00.000Z",
                   "data": {"call_id": "call-123"}})


def test_what_the_reference_library_signs_verifies() -> None:
    key = secret()
    headers = signed(key, BODY, datetime.now(timezone.utc))
    event = earshot.verify_webhook(headers, BODY.encode(), key)
    assert event["type"] == "call.processed"
    assert event["data"]["call_id"] == "call-123"
    # The reference library verifies the same message too.
    Webhook(key).verify(BODY, {k.lower(): v for k, v in headers.items()})


def test_any_secret_of_a_rotation_passes_and_others_fail() -> None:
    old, new = secret(), secret()
    headers = signed(old, BODY, datetime.now(timezone.utc))
    assert earshot.verify_webhook(headers, BODY, [new, old])["type"] == "call.processed"
    with pytest.raises(earshot.WebhookVerificationError, match="no signature matches"):
        earshot.verify_webhook(headers, BODY, [new])


def test_tampered_or_old_events_are_refused() -> None:
    key = secret()
    headers = signed(key, BODY, datetime.now(timezone.utc))
    with pytest.raises(earshot.WebhookVerificationError, match="no signature matches"):
        earshot.verify_webhook(headers, BODY.replace("123", "124"), key)
    old = signed(key, BODY, datetime.fromtimestamp(time.time() - 3600, timezone.utc))
    with pytest.raises(earshot.WebhookVerificationError, match="too old"):
        earshot.verify_webhook(old, BODY, key)
    with pytest.raises(earshot.WebhookVerificationError, match="no webhook-signature"):
        earshot.verify_webhook({"webhook-id": "msg_1", "webhook-timestamp": "1"}, BODY, key)
    assert issubclass(earshot.WebhookVerificationError, ValueError)


def test_an_event_the_server_sends_verifies_with_both(tmp_path) -> None:
    """End to end: an endpoint created through the JSON form of EventEndpointService, a call
    ingested with the SDK, and the `call.processed` a real earshot process POSTs to a receiver
    here verifies with the standardwebhooks library and with earshot.verify_webhook."""
    import queue
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from server_process import start_server, stop_server

    got: "queue.Queue[tuple[Dict[str, str], bytes]]" = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            got.put(({name.lower(): value for name, value in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    server = start_server(tmp_path, {"EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS": "true",
                                     "EARSHOT_EVENTS__POLL_INTERVAL_MS": "20"})
    try:
        request = urllib.request.Request(
            server.url + "/earshot.v1.EventEndpointService/CreateEventEndpoint",
            data=json.dumps({"url": f"http://127.0.0.1:{receiver.server_port}/hooks",
                             "event_types": ["call.processed"]}).encode(),
            headers={"content-type": "application/json", "api-key": server.api_key},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            created = json.loads(answer.read())
        key = created["secret"]
        assert key.startswith("whsec_")
        client = earshot.Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
        client.ingest_conversations(
            project_id=server.project_id,
            conversations=[{"call_id": "py-event-1", "transcript": [
                {"role": "user", "content": "Is my order on its way?", "timestamp_ms": 0},
                {"role": "assistant", "content": "Yes, it ships today.", "timestamp_ms": 1500},
            ]}],
        )
        headers, body = got.get(timeout=30)
        # The reference library takes the server's message as it came.
        Webhook(key).verify(body, headers)
        event = earshot.verify_webhook(headers, body, key)
        assert event["type"] == "call.processed"
        assert event["data"]["call_id"] == "py-event-1"
        assert headers["webhook-id"].startswith("msg_")
        with pytest.raises(earshot.WebhookVerificationError):
            earshot.verify_webhook(headers, body.replace(b"py-event-1", b"py-event-2"), key)
    finally:
        stop_server(server)
        receiver.shutdown()
