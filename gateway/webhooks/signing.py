"""X-Webhook-Signature: HMAC-SHA256 over the exact bytes of the request, keyed with [webhooks] secret.

What is signed (a receiver recomputes it from what it received):
  - GET:  the UTF-8 bytes of the request URL's whole query string as sent, without the leading
          '?': the configured URL's own query (if any), '&', then the event's parameters,
          percent-encoded as `application/x-www-form-urlencoded`. Take it verbatim from the
          request line; do not decode and re-encode it.
  - POST: the exact bytes of the JSON body.
The header value is "sha256=" followed by 64 lowercase hex digits.
"""
from __future__ import annotations

import hashlib
import hmac
import logging

logger = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """Return "sha256=<hex>" of HMAC-SHA256(key=UTF-8 of `secret`, message=`body`)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
