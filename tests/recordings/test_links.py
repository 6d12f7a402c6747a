"""Recording links: signed with an expiry by default, plain legacy links when configured."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.recordings.links import RecordingLinks, link_secret, sign, verify

NAME = "211230102738_669-1-1.mp3"
NOW = 1_767_225_600.0
KEY = "access-key-0123456789"


def make_links(**overrides) -> RecordingLinks:
    options = {"is_signed": True, "ttl_days": 30} | overrides
    return RecordingLinks("https://gw.example.com:5001/", KEY, **options)


def query_of(link: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(link).query)
    return query["exp"][0], query["sig"][0]


def test_signed_link_has_expiry_and_signature():
    link = make_links().url(NAME, NOW)

    parts = urlsplit(link)
    exp, sig = query_of(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == \
        f"https://gw.example.com:5001/webapi/recording/{NAME}"
    assert int(exp) == int(NOW) + 30 * 86400
    assert len(sig) == 64 and KEY not in link


def test_signed_link_verifies_until_it_expires():
    links = make_links()
    exp, sig = query_of(links.url(NAME, NOW))

    assert links.is_allowed(NAME, exp, sig, NOW + 29 * 86400)
    assert not links.is_allowed(NAME, exp, sig, NOW + 30 * 86400)


@pytest.mark.parametrize("change", ["other name", "later exp", "flipped sig", "upper-case sig",
                                    "no sig", "no exp", "exp with sign", "exp with a leading zero",
                                    "exp with a trailing newline", "exp in Arabic-Indic digits", "other key"])
def test_verify_refuses_altered_links(change):
    secret = link_secret(KEY)
    exp = str(int(NOW) + 100)
    sig = sign(secret, NAME, int(exp))
    name = NAME
    if change == "other name":
        name = "211230102738_669-1-2.mp3"
    elif change == "later exp":
        exp = str(int(exp) + 1)
    elif change == "flipped sig":
        sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    elif change == "upper-case sig":
        sig = sig.upper()
    elif change == "no sig":
        sig = None
    elif change == "no exp":
        exp = None
    elif change == "exp with sign":
        exp = "+" + exp
    elif change == "exp with a leading zero":
        exp = "0" + exp     # int() reads the same time, but it is not the text that was signed
    elif change == "exp with a trailing newline":
        exp = exp + "\n"
    elif change == "exp in Arabic-Indic digits":
        exp = "".join(chr(0x0660 + int(d)) for d in exp)
    elif change == "other key":
        secret = link_secret(KEY + "x")

    assert not verify(secret, name, exp, sig, NOW)


def test_verify_refuses_invalid_name_even_when_signed():
    secret = link_secret(KEY)
    name = "../secret.mp3"

    assert not verify(secret, name, "9999999999", sign(secret, name, 9999999999), NOW)


def test_link_secret_is_derived_not_the_key():
    assert link_secret(KEY) != KEY.encode()
    assert link_secret(KEY) == link_secret(KEY)
    assert link_secret(KEY) != link_secret(KEY + "1")


def test_plain_links_are_the_legacy_form():
    links = make_links(is_signed=False)

    link = links.url(NAME, NOW)

    assert link == f"https://gw.example.com:5001/webapi/recording/{NAME}"
    assert links.is_allowed(NAME, None, None, NOW)
    assert not links.is_allowed("../" + NAME, None, None, NOW)


def test_url_refuses_invalid_names():
    with pytest.raises(ValueError):
        make_links().url("../x.mp3", NOW)


def test_max_age_never_outlives_the_link():
    links = make_links()

    assert links.max_age_s(str(int(NOW) + 60), NOW) == 60
    assert links.max_age_s(str(int(NOW) + 10 * 86400), NOW) == 86400
    assert make_links(is_signed=False).max_age_s(None, NOW) == 86400


def test_from_config_uses_public_url_and_settings(recordings_config):
    config = recordings_config(recordings={"signed_links": "false"})

    links = RecordingLinks.from_config(config)

    assert links.url(NAME, NOW) == f"https://gw.example.com:5001/webapi/recording/{NAME}"


def test_from_config_without_public_url_uses_listen_address(recordings_config):
    config = recordings_config(webapi={"public_url": "", "listen": "10.0.0.5:8080"})

    links = RecordingLinks.from_config(config)

    assert links.url(NAME, NOW).startswith(f"http://10.0.0.5:8080/webapi/recording/{NAME}?exp=")
