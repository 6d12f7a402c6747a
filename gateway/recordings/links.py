"""Recording download links: `<public_url>/webapi/recording/<name>`, signed with an expiry by default.

Signed links (`[recordings] signed_links = true`, the default) look like
`https://gw.example.com/webapi/recording/211230102738_669-1-1.mp3?exp=1767225600&sig=<64 hex>`:
`sig` is HMAC-SHA256 over the name and `exp` (Unix seconds), keyed with a secret derived from the
`[webapi] key`. The legacy product sent plain links; CRMs download the URL exactly as they received
it, so the extra query string is invisible to them.

The trade-off:
- Plain links (`signed_links = false`) never expire and are guessable: a name is a timestamp plus
  a small call counter, so anyone who can reach the gateway can enumerate recordings. They are
  kept only for integrations that rebuild the URL from the file name instead of using it as given.
- Signed links cannot be guessed or altered, but they stop working after `link_ttl_days` (keep it
  at least `keep_days`, after which the file is gone anyway), and changing the access key
  invalidates every link already sent.
Verification is the pure function `verify`; the server answers every failure with the same 404.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import urlencode

from gateway.config import Config
from gateway.recordings.names import is_valid_name

ROUTE_PREFIX = "/webapi/recording/"

# Canonical decimal only: the signed text is exactly the `exp` the link carried, so "01798596263"
# (a leading zero) or "+1798596263" is not the same link as "1798596263" and is refused.
_EXP_RE = re.compile(r"[1-9][0-9]{0,11}")
_SIG_RE = re.compile(r"[0-9a-f]{64}")
# Fixed label: the link secret is derived from, but never equal to, the access key.
_DERIVATION_LABEL = b"3cx-gateway recording links v1"


def link_secret(access_key: str) -> bytes:
    """The HMAC key of recording links, derived from the access key."""
    return hmac.new(access_key.encode("utf-8"), _DERIVATION_LABEL, hashlib.sha256).digest()


def sign(secret: bytes, name: str, exp: int) -> str:
    """Hex HMAC-SHA256 of `<name>\\n<exp>`."""
    return hmac.new(secret, f"{name}\n{exp}".encode("ascii"), hashlib.sha256).hexdigest()


def verify(secret: bytes, name: str, exp: str | None, sig: str | None, now: float) -> bool:
    """True when `name` is valid, `exp` is a whole Unix time not yet passed and `sig` matches."""
    if not is_valid_name(name) or not isinstance(exp, str) or not isinstance(sig, str):
        return False
    if not _EXP_RE.fullmatch(exp) or not _SIG_RE.fullmatch(sig):
        return False
    if int(exp) <= now:
        return False
    return hmac.compare_digest(sign(secret, name, int(exp)), sig)


class RecordingLinks:
    """Builds and checks the download links of one gateway (base URL, secret, signing policy)."""

    def __init__(self, base_url: str, access_key: str, *, is_signed: bool, ttl_days: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.is_signed = is_signed
        self.ttl_s = int(ttl_days) * 86400
        self._secret = link_secret(access_key)

    @classmethod
    def from_config(cls, config: Config) -> RecordingLinks:
        """Links under `[webapi] public_url`, or `http://<listen>` when that is empty."""
        base_url = config.webapi.public_url or f"http://{config.webapi.listen}"
        return cls(base_url, config.webapi.key, is_signed=config.recordings.signed_links,
                   ttl_days=config.recordings.link_ttl_days)

    def url(self, name: str, now: float) -> str:
        """The link the FILES webhook carries for file `name`; ValueError for an invalid name."""
        if not is_valid_name(name):
            raise ValueError(f"not a valid recording name: {name!r}")
        link = f"{self.base_url}{ROUTE_PREFIX}{name}"
        if not self.is_signed:
            return link
        exp = int(now) + self.ttl_s
        return f"{link}?{urlencode({'exp': exp, 'sig': sign(self._secret, name, exp)})}"

    def is_allowed(self, name: str, exp: str | None, sig: str | None, now: float) -> bool:
        """Whether a request for `name` with these query values may be served."""
        if not self.is_signed:
            return is_valid_name(name)
        return verify(self._secret, name, exp, sig, now)

    def max_age_s(self, exp: str | None, now: float, cap_s: int = 86400) -> int:
        """How long a client may cache the answer: at most `cap_s`, never beyond the link's expiry."""
        if self.is_signed and isinstance(exp, str) and _EXP_RE.fullmatch(exp):
            return max(0, min(cap_s, int(exp) - int(now)))
        return cap_s
