"""Serves MP3 recordings: GET/HEAD /webapi/recording/<name>, with Range and caching headers.

Register with `app.register_blueprint(create_recordings_blueprint(mp3_dir, links, clock=clock))`.
The rule sits beside the legacy `/webapi/<key>/<command>` route; Werkzeug prefers its fixed
`recording` segment. Every refusal (invalid or traversing name, bad or expired signature,
missing file) is the same 404 body, so a client learns nothing about which check failed.
Range: one range answers 206; several ranges (`bytes=0-0,2-3`) answer 200 with the whole file, as
RFC 9110 §14.2 allows (no multipart/byteranges: no player asks for it, and it is easy to get wrong).
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from flask import Blueprint, Response, jsonify, request, send_file
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from werkzeug.routing import PathConverter

from gateway.clock import Clock
from gateway.recordings.links import RecordingLinks
from gateway.recordings.names import is_valid_name

logger = logging.getLogger(__name__)

NOT_FOUND_BODY = {"error": "not found"}


def _not_found() -> tuple[Response, int]:
    return jsonify(NOT_FOUND_BODY), 404


class AnyPath(PathConverter):
    """Like <path:>, but also empty or starting with a slash ("%2fetc%2fpasswd" decodes to "/etc/passwd"),
    so that every name under the prefix reaches the one 404 instead of another route or a redirect."""

    regex = ".*?"
    part_isolating = False


def create_recordings_blueprint(mp3_dir: str | os.PathLike[str], links: RecordingLinks, *,
                                clock: Clock) -> Blueprint:
    """A blueprint serving valid, correctly linked MP3 files from `mp3_dir`."""
    folder = Path(mp3_dir)
    blueprint = Blueprint("recordings", __name__)

    def add_converter(state: BlueprintSetupState) -> None:
        state.app.url_map.converters.setdefault("anypath", AnyPath)

    blueprint.record_once(add_converter)

    # <anypath:...> so that names with slashes reach this check (and its 404) too. No slash merging:
    # "/webapi/recording/%2fetc%2fpasswd" must get this 404, not a 308 redirect.
    @blueprint.route("/webapi/recording/<anypath:name>", methods=["GET", "HEAD"], merge_slashes=False,
                     provide_automatic_options=False)
    def recording(name: str) -> ResponseReturnValue:
        now = clock.time()
        exp, sig = request.args.get("exp"), request.args.get("sig")
        if not is_valid_name(name) or not links.is_allowed(name, exp, sig, now):
            logger.info("recording %r refused", name[:80])
            return _not_found()
        if "," in request.headers.get("Range", ""):
            request.environ.pop("HTTP_RANGE", None)   # several ranges: the whole file (module docstring)
        path = folder / name
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                return _not_found()
            response = send_file(path, mimetype="audio/mpeg", conditional=True, etag=True,
                                 last_modified=info.st_mtime, download_name=name)
        except OSError:
            logger.info("recording %s not found", name)
            return _not_found()
        response.cache_control.public = False
        response.cache_control.no_cache = None
        response.cache_control.private = True
        response.cache_control.max_age = links.max_age_s(exp, now)
        return response

    return blueprint
