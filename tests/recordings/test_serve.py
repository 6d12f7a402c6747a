"""Serving MP3s: same bytes, Range, caching headers, and one uniform 404 for everything refused."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from flask import Flask

from gateway.clock import FakeClock
from gateway.recordings.links import RecordingLinks
from gateway.recordings.serve import NOT_FOUND_BODY, create_recordings_blueprint

NAME = "211230102738_669-1-1.mp3"
KEY = "access-key-0123456789"


@pytest.fixture
def mp3_file(mp3_dir):
    """A stored recording with recognisable bytes."""
    path = mp3_dir / NAME
    path.write_bytes(bytes(range(256)) * 40)
    return path


def make_client(mp3_dir, *, is_signed=True, clock=None, is_legacy_first=False):
    clock = clock or FakeClock()
    links = RecordingLinks("https://gw.example.com", KEY, is_signed=is_signed, ttl_days=30)
    app = Flask("test")

    def legacy(key, command):   # the legacy command route shares the /webapi prefix
        return {"legacy": command}

    if is_legacy_first:
        app.add_url_rule("/webapi/<key>/<command>", view_func=legacy, methods=["GET", "POST"])
    app.register_blueprint(create_recordings_blueprint(mp3_dir, links, clock=clock))
    if not is_legacy_first:
        app.add_url_rule("/webapi/<key>/<command>", view_func=legacy, methods=["GET", "POST"])
    return app.test_client(), links, clock


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_download_returns_the_same_bytes_with_headers(mp3_dir, mp3_file):
    client, links, clock = make_client(mp3_dir)

    response = client.get(path_of(links.url(NAME, clock.time())))

    assert response.status_code == 200
    assert response.data == mp3_file.read_bytes()
    assert response.mimetype == "audio/mpeg"
    assert response.headers["Content-Length"] == str(mp3_file.stat().st_size)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    assert response.headers["Cache-Control"] in ("private, max-age=86400", "max-age=86400, private")


def test_head_gives_headers_without_body(mp3_dir, mp3_file):
    client, links, clock = make_client(mp3_dir)

    response = client.head(path_of(links.url(NAME, clock.time())))

    assert response.status_code == 200 and response.data == b""
    assert response.headers["Content-Length"] == str(mp3_file.stat().st_size)


def test_range_request_returns_partial_content(mp3_dir, mp3_file):
    client, links, clock = make_client(mp3_dir)

    response = client.get(path_of(links.url(NAME, clock.time())), headers={"Range": "bytes=100-299"})

    assert response.status_code == 206
    assert response.data == mp3_file.read_bytes()[100:300]
    assert response.headers["Content-Range"] == f"bytes 100-299/{mp3_file.stat().st_size}"


@pytest.mark.parametrize("ranges", ["bytes=0-0,2-3", "bytes=0-9,5-20", "bytes=-1,0-0"],
                         ids=["two small ranges", "overlapping ranges", "suffix and prefix"])
def test_several_ranges_return_the_whole_file(mp3_dir, mp3_file, ranges):
    client, links, clock = make_client(mp3_dir)

    response = client.get(path_of(links.url(NAME, clock.time())), headers={"Range": ranges})

    assert response.status_code == 200
    assert response.data == mp3_file.read_bytes()
    assert "Content-Range" not in response.headers


def test_link_with_a_leading_zero_in_exp_is_404(mp3_dir, mp3_file):
    client, links, clock = make_client(mp3_dir)
    url = path_of(links.url(NAME, clock.time()))

    response = client.get(url.replace("exp=", "exp=0"))

    assert client.get(url).status_code == 200
    assert response.status_code == 404 and response.get_json() == NOT_FOUND_BODY


def test_matching_etag_is_not_modified(mp3_dir, mp3_file):
    client, links, clock = make_client(mp3_dir)
    url = path_of(links.url(NAME, clock.time()))
    etag = client.get(url).headers["ETag"]

    response = client.get(url, headers={"If-None-Match": etag})

    assert response.status_code == 304


def test_plain_link_is_served_when_signing_is_off(mp3_dir, mp3_file):
    client, _links, _clock = make_client(mp3_dir, is_signed=False)

    response = client.get(f"/webapi/recording/{NAME}")

    assert response.status_code == 200 and response.data == mp3_file.read_bytes()


def test_expired_link_is_404(mp3_dir, mp3_file):
    client, links, clock = make_client(mp3_dir)
    url = path_of(links.url(NAME, clock.time()))

    clock.advance(31 * 86400)
    response = client.get(url)

    assert response.status_code == 404 and response.get_json() == NOT_FOUND_BODY


@pytest.mark.parametrize("mangle", ["no query", "other sig", "other exp", "sig for other file"])
def test_badly_signed_link_is_404(mp3_dir, mp3_file, mangle):
    client, links, clock = make_client(mp3_dir)
    (mp3_dir / "211230102738_669-1-2.mp3").write_bytes(b"x")
    url = path_of(links.url(NAME, clock.time()))
    if mangle == "no query":
        url = url.split("?")[0]
    elif mangle == "other sig":
        url = url[:-1] + ("0" if url[-1] != "0" else "1")
    elif mangle == "other exp":
        url = url.replace("exp=", "exp=1")
    elif mangle == "sig for other file":
        url = url.replace(NAME, "211230102738_669-1-2.mp3")

    response = client.get(url)

    assert response.status_code == 404 and response.get_json() == NOT_FOUND_BODY


def test_missing_file_is_the_same_404(mp3_dir):
    client, links, clock = make_client(mp3_dir)

    response = client.get(path_of(links.url(NAME, clock.time())))

    assert response.status_code == 404 and response.get_json() == NOT_FOUND_BODY


@pytest.mark.parametrize("path", [
    "/webapi/recording/..%2f..%2fetc%2fpasswd",
    "/webapi/recording/%2fetc%2fpasswd",
    "/webapi/recording//etc/passwd",
    "/webapi/recording/%2F%2Fetc%2Fpasswd",
    "/webapi/recording/%2e%2e/%2e%2e/etc/passwd",
    "/webapi/recording/../outside.mp3",
    "/webapi/recording/..%5coutside.mp3",
    "/webapi/recording/sub/211230102738_669-1-1.mp3",
    "/webapi/recording/211230102738_669-1-1.mp3%00.txt",
    "/webapi/recording/%EF%BC%92%EF%BC%91%EF%BC%91230102738_669-1-1.mp3",
    "/webapi/recording/outside.mp3",
    "/webapi/recording/.hidden.mp3",
    "/webapi/recording/" + "1" * 300 + ".mp3",
], ids=lambda p: p[len("/webapi/recording/"):][:40])
def test_traversal_attempts_are_404(mp3_dir, mp3_file, path):
    (mp3_dir.parent / "outside.mp3").write_bytes(b"secret")
    (mp3_dir / "outside.mp3").write_bytes(b"secret")
    (mp3_dir / ".hidden.mp3").write_bytes(b"secret")
    (mp3_dir / "sub").mkdir()
    (mp3_dir / "sub" / NAME).write_bytes(b"secret")
    client, _links, _clock = make_client(mp3_dir, is_signed=False)

    response = client.get(path)

    assert response.status_code == 404   # never a 308 slash-merge redirect
    assert b"secret" not in response.data
    assert response.get_json() == NOT_FOUND_BODY


def test_valid_name_that_is_a_symlink_is_404(mp3_dir, tmp_path):
    target = tmp_path / "elsewhere.mp3"
    target.write_bytes(b"secret")
    os.symlink(target, mp3_dir / NAME)
    client, _links, _clock = make_client(mp3_dir, is_signed=False)

    response = client.get(f"/webapi/recording/{NAME}")

    assert response.status_code == 404 and response.get_json() == NOT_FOUND_BODY


@pytest.mark.parametrize("is_legacy_first", [False, True], ids=["blueprint first", "legacy route first"])
def test_recording_and_legacy_routes_coexist_in_any_order(mp3_dir, mp3_file, is_legacy_first):
    client, links, clock = make_client(mp3_dir, is_legacy_first=is_legacy_first)

    assert client.get(f"/webapi/{KEY}/pbx.calls.get").get_json() == {"legacy": "pbx.calls.get"}
    assert client.get(path_of(links.url(NAME, clock.time()))).data == mp3_file.read_bytes()
    assert client.get("/webapi/recording/x.mp3").get_json() == NOT_FOUND_BODY
