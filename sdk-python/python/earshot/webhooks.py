"""Verifying the events earshot sends to your endpoints (Standard Webhooks).

>>> event = verify_webhook(request.headers, request.body, "whsec_...")  # doctest: +SKIP
>>> event["type"], event["data"]["call_id"]  # doctest: +SKIP
('call.processed', 'call-123')
"""

import json
from typing import Any, Dict, Mapping, Sequence, Union

from earshot import _native


class WebhookVerificationError(ValueError):
    """The event's signature or timestamp does not verify, or its body is not an earshot event."""


def verify_webhook(
    headers: Mapping[str, str], body: Union[bytes, str], secrets: Union[str, Sequence[str]]
) -> Dict[str, Any]:
    """Verify an event earshot sent and return its envelope (``type``, ``timestamp``, ``data``).

    ``headers`` are the request's headers (any case: ``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature``), ``body`` its exact bytes, ``secrets`` the endpoint's signing secret
    (``whsec_...``) or, during a rotation, several: any one matching passes. The timestamp must
    be within five minutes of this machine's clock. Deduplicate on ``webhook-id``: every retry
    of an event repeats it. Raises :class:`WebhookVerificationError` naming why it fails.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    listed = [secrets] if isinstance(secrets, str) else list(secrets)
    try:
        text = _native.verify_webhook({str(k): str(v) for k, v in headers.items()}, raw, listed)
    except ValueError as error:
        raise WebhookVerificationError(str(error)) from None
    event: Dict[str, Any] = json.loads(text)
    return event
