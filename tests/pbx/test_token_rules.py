"""Pure rules of the token source: JWT payload reading, the expires_in unit, when to renew."""
from __future__ import annotations

import base64
import json

import pytest

from gateway.pbx.auth import expires_in_seconds, jwt_claims, jwt_lifetime_s, refresh_after_s


def make_jwt(claims: dict | str) -> str:
    """An unsigned JWT-shaped token with `claims` as its payload (signature is not checked)."""
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")

    payload = claims if isinstance(claims, str) else json.dumps(claims)
    return ".".join([part(b'{"alg":"RS256","typ":"JWT"}'), part(payload.encode()), part(b"signature")])


@pytest.mark.parametrize("token, expected", [
    (make_jwt({"exp": 1700003600, "iat": 1700000000}), {"exp": 1700003600, "iat": 1700000000}),
    (make_jwt({"sub": "ü" * 7}), {"sub": "ü" * 7}),
    ("opaque-reference-token", None),
    ("a.b", None),
    ("a.!!!.c", None),
    (make_jwt("[1, 2]"), None),
    (make_jwt("not json"), None),
], ids=["jwt with exp and iat", "payload needing base64 padding", "opaque token", "two parts",
        "payload not base64", "payload not an object", "payload not json"])
def test_jwt_claims_reads_the_payload_or_gives_none(token, expected):
    assert jwt_claims(token) == expected


@pytest.mark.parametrize("claims, issuer_now_s, expected", [
    ({"exp": 1700003600, "iat": 1700000000}, 0.0, 3600.0),
    ({"exp": 1700003600}, 1700000600.0, 3000.0),
    ({"exp": 1700003600.5, "iat": 1700000000}, 0.0, 3600.5),
    ({"iat": 1700000000}, 1700000000.0, None),
    ({"exp": "1700003600", "iat": 1700000000}, 0.0, None),
    ({"exp": True, "iat": 0}, 0.0, None),
    ({"exp": 1700000000, "iat": 1700000000}, 0.0, None),
    ({"exp": 1699999000}, 1700000000.0, None),
], ids=["exp minus iat", "exp minus the pbx clock without iat", "fractional exp", "no exp",
        "exp as a string", "exp as a boolean", "zero lifetime", "already expired"])
def test_jwt_lifetime_comes_from_exp(claims, issuer_now_s, expected):
    assert jwt_lifetime_s(make_jwt(claims), issuer_now_s=issuer_now_s) == expected


def test_jwt_lifetime_of_an_opaque_token_is_unknown():
    assert jwt_lifetime_s("opaque", issuer_now_s=0.0) is None


@pytest.mark.parametrize("expires_in, expected", [
    (3600, 3600.0),
    (60, 3600.0),
    (30, 1800.0),
    (61, 61.0),
    ("3600", 3600.0),
    (1.5, 90.0),
    (0, None),
    (-5, None),
    (None, None),
    ("soon", None),
    (float("nan"), None),
], ids=["seconds since 20.0.9", "60 is minutes before 20.0.9", "30 is minutes", "61 is seconds",
        "numeric string", "fraction of minutes", "zero is unusable", "negative is unusable", "missing",
        "not a number", "nan"])
def test_expires_in_unit_rule(expires_in, expected):
    assert expires_in_seconds(expires_in) == expected


@pytest.mark.parametrize("lifetime_s, expected", [
    (3600.0, 3540.0),
    (240.0, 180.0),
    (20.0, 15.0),
], ids=["an hour renews a minute early", "four minutes renews at three quarters",
        "short lifetime renews at three quarters"])
def test_refresh_after_leaves_a_margin_but_never_renews_too_early(lifetime_s, expected):
    assert refresh_after_s(lifetime_s) == expected
