"""classify() and backoff_s(): what an attempt's outcome means, and how long to wait."""
from __future__ import annotations

import pytest
import requests

from gateway.webhooks.policy import (BACKOFF_CAP_S, CLIENT_ERROR_ATTEMPTS, DELIVERED, FAILED, RETRY,
                                     backoff_s, classify)

DAY_S = 24 * 3600.0


def answer(status: int) -> requests.Response:
    """A real (unsent) requests.Response with `status`."""
    response = requests.Response()
    response.status_code = status
    return response


@pytest.mark.parametrize("result, attempts, expected", [
    (answer(200), 1, DELIVERED),
    (answer(204), 1, DELIVERED),
    (answer(299), 7, DELIVERED),
    (answer(500), 1, RETRY),
    (answer(503), 50, RETRY),
    (answer(429), 50, RETRY),
    (answer(400), 1, RETRY),
    (answer(404), CLIENT_ERROR_ATTEMPTS - 1, RETRY),
    (answer(404), CLIENT_ERROR_ATTEMPTS, FAILED),
    (answer(410), CLIENT_ERROR_ATTEMPTS + 5, FAILED),
    (answer(301), CLIENT_ERROR_ATTEMPTS, FAILED),
    (requests.ConnectTimeout("x"), 50, RETRY),
    (requests.ReadTimeout("x"), 50, RETRY),
    (requests.ConnectionError("refused"), 50, RETRY),
    (requests.exceptions.ChunkedEncodingError("cut"), 50, RETRY),
    (TimeoutError(), 50, RETRY),
    (requests.TooManyRedirects("x"), 1, RETRY),
    (requests.exceptions.InvalidURL("x"), CLIENT_ERROR_ATTEMPTS, FAILED),
], ids=[
    "200 is delivered", "204 is delivered", "299 is delivered",
    "500 is retried", "503 is retried however often", "429 is retried however often",
    "400 is retried at first", "404 is retried until the last try", "404 fails at the last try",
    "410 fails after the last try", "an unfollowed redirect fails like a 4xx",
    "a connect timeout is retried", "a read timeout is retried", "a refused connection is retried",
    "a cut-off answer is retried", "a bare timeout is retried",
    "another request error is retried at first", "an invalid url fails after a few tries",
])
def test_classify_outcome(result, attempts, expected):
    verdict = classify(result, attempts)

    assert verdict == expected


@pytest.mark.parametrize("result, age_s, expected", [
    (answer(503), DAY_S - 1, RETRY),
    (answer(503), DAY_S, FAILED),
    (requests.ConnectionError("down"), DAY_S + 60, FAILED),
    (answer(200), DAY_S * 3, DELIVERED),
], ids=[
    "a 503 within the retry window is retried", "a 503 at the end of the window fails",
    "a refused connection past the window fails", "a late success is still delivered",
])
def test_classify_retry_window(result, age_s, expected):
    verdict = classify(result, 1, age_s=age_s, retry_s=DAY_S)

    assert verdict == expected


@pytest.mark.parametrize("attempts, rand, expected_s", [
    (1, 0.0, 2.0),
    (2, 0.0, 4.0),
    (5, 0.0, 32.0),
    (8, 0.0, 256.0),
    (9, 0.0, BACKOFF_CAP_S),
    (40, 0.0, BACKOFF_CAP_S),
    (3, 0.5, 8.0 * 1.05),
    (40, 0.999, BACKOFF_CAP_S * 1.0999),
], ids=[
    "first retry waits 2s", "second retry waits 4s", "fifth retry waits 32s", "eighth waits 256s",
    "ninth is capped", "much later is still capped", "jitter adds up to a tenth",
    "jitter applies on top of the cap",
])
def test_backoff_grows_then_caps(attempts, rand, expected_s):
    delay_s = backoff_s(attempts, lambda: rand)

    assert delay_s == pytest.approx(expected_s)
