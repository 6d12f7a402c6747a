"""sign(): HMAC-SHA256 over the exact bytes, as a receiver recomputes it."""
from __future__ import annotations

import hashlib
import hmac

from gateway.webhooks.signing import sign


def test_sign_matches_an_independent_hmac():
    body = b'{"FILES":["https://gw.example/webapi/recording/211230102738_669-1-1.mp3"],"id":"x"}'

    signature = sign("s3cr\u00e9t", body)

    expected = hmac.new("s3cr\u00e9t".encode("utf-8"), body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"


def test_sign_changes_with_any_byte_of_the_body():
    signature = sign("key", b"event=ringing&user=101")

    assert signature != sign("key", b"event=ringing&user=102")
    assert signature != sign("other", b"event=ringing&user=101")
    assert len(signature) == len("sha256=") + 64


def test_sign_of_an_empty_body_is_defined():
    signature = sign("key", b"")

    assert signature == "sha256=" + hmac.new(b"key", b"", hashlib.sha256).hexdigest()
