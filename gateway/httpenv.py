"""HTTP client settings from the environment, read once per destination instead of on every request.

requests reads the proxy variables (HTTPS_PROXY, NO_PROXY, ...), the CA bundle variables and
~/.netrc again for every request it sends; at hundreds of requests a second that costs more than
the request itself. The gateway's sessions each talk to one destination (the PBX, or one webhook
target), so `settle(session, url)` reads those settings for `url` once, puts them on the session
and turns the per-request reading off. A change to the environment takes effect at the next start.
"""
from __future__ import annotations

import os
from typing import Mapping
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def settle(session: requests.Session, url: str) -> requests.Session:
    """Give `session` the environment's proxy (unless NO_PROXY names the host of `url`) and CA
    bundle for `url`, and stop it reading the environment per request; returns the session."""
    session.proxies.update(get_environ_proxies(url))
    if session.verify is True:
        session.verify = ca_bundle() or True
    session.trust_env = False
    return session


def names_proxy(url: str, proxies: Mapping[str, str]) -> bool:
    """Whether `proxies` (requests' form: scheme or "all" -> proxy url) send requests to `url` through a proxy."""
    return bool(proxies.get(urlsplit(url).scheme) or proxies.get("all"))


def ca_bundle() -> str | None:
    """The CA bundle the environment names (REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE), or None."""
    return next((os.environ[name] for name in CA_BUNDLE_VARIABLES if os.environ.get(name)), None)
