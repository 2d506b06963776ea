"""earshot: send completed voice-AI calls for monitoring, and search what was stored.

>>> from earshot import Earshot
>>> client = Earshot(api_key="es_...", base_url="http://127.0.0.1:8080", project="<project id>")
>>> client.ingest_conversations(conversations=[{"call_id": "call-123", "transcript": [
...     {"role": "assistant", "content": "Thanks for calling!", "timestamp_ms": 0}]}])
"""

from earshot._client import (
    AsyncEarshot,
    AsyncEventEndpoints,
    AsyncIntegrations,
    Earshot,
    EventEndpoints,
    Integrations,
)
from earshot._native import __version__
from earshot.errors import (
    AlreadyExistsError,
    AuthenticationError,
    DeadlineExceededError,
    EarshotError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
)
from earshot.types import Audio, Conversation, Turn
from earshot.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "AlreadyExistsError",
    "AsyncEarshot",
    "AsyncEventEndpoints",
    "AsyncIntegrations",
    "Audio",
    "AuthenticationError",
    "Conversation",
    "DeadlineExceededError",
    "Earshot",
    "EarshotError",
    "EventEndpoints",
    "FieldViolation",
    "Integrations",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "Turn",
    "UnavailableError",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
