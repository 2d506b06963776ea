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
