"""Retry policy of webhook delivery: what one attempt's outcome means, and how long to wait.

Both functions are pure: no I/O, no clock, no globals; the randomness of the jitter is a parameter.

    classify(result, attempts, age_s=..., retry_s=...)  -> DELIVERED | RETRY | FAILED
    backoff_s(attempts, rand)                            -> seconds until the next attempt
"""
from __future__ import annotations

import logging
import random
from typing import Callable

import requests

logger = logging.getLogger(__name__)

DELIVERED = "DELIVERED"
RETRY = "RETRY"
FAILED = "FAILED"

# A 4xx other than 429 (and a 3xx: redirects are not followed) usually means the CRM rejects the
# request for good, but a misconfigured proxy or a deploy in progress can answer one briefly too,
# so such an answer is retried until this many attempts have been made, then the event is failed.
CLIENT_ERROR_ATTEMPTS = 3

BACKOFF_BASE = 2.0      # seconds ** attempts: 2, 4, 8, 16, ...
BACKOFF_CAP_S = 300.0   # once the CRM is back, a pending event waits at most this long (+ jitter)
JITTER_FRACTION = 0.1   # up to 10% more, so events queued together do not retry in lockstep


# Failures of the network or of the CRM's server, as opposed to a request it cannot accept.
# (Every requests exception is an OSError, so OSError itself is deliberately not listed.)
_TRANSIENT_ERRORS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                     TimeoutError, ConnectionError)


def classify(result: object, attempts: int = 1, *, age_s: float = 0.0,
             retry_s: float = float("inf")) -> str:
    """Decide what one delivery attempt means for its event.

    `result` is the response (anything with an int `status_code`) or the exception raised while
    sending. `attempts` counts every attempt including this one. `age_s` is how long the event has
    been retried so far and `retry_s` how long it may be (`[webhooks] retry_hours`): a RETRY past
    that window becomes FAILED.

    2xx -> DELIVERED. Timeouts, connection errors, 5xx and 429 -> RETRY. Any other status or
    exception -> RETRY until CLIENT_ERROR_ATTEMPTS attempts have been made, then FAILED.
    """
    status = getattr(result, "status_code", None)
    if isinstance(status, int) and 200 <= status < 300:
        return DELIVERED
    if _is_transient(result, status):
        verdict = RETRY
    else:
        verdict = RETRY if attempts < CLIENT_ERROR_ATTEMPTS else FAILED
    if verdict == RETRY and age_s >= retry_s:
        return FAILED
    return verdict


def _is_transient(result: object, status: int | None) -> bool:
    if isinstance(status, int):
        return status >= 500 or status == 429
    return isinstance(result, _TRANSIENT_ERRORS)


def backoff_s(attempts: int, rand: Callable[[], float] = random.random, *,
              base: float = BACKOFF_BASE, cap_s: float = BACKOFF_CAP_S,
              jitter: float = JITTER_FRACTION) -> float:
    """Seconds to wait after `attempts` failed attempts: min(base ** attempts, cap_s) plus jitter.

    `rand()` returns a number in [0, 1); the jitter adds up to `jitter` times the delay.
    """
    delay_s = min(base ** max(attempts, 1), cap_s)
    return delay_s + delay_s * jitter * rand()
