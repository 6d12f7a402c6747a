"""Fixtures of the recordings tests: real WAV files, an MP3 folder, configuration, ffprobe."""
from __future__ import annotations

import json
import math
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from gateway.config import Config, from_dict

LINK_KEY = "k3y-for-recording-tests-42"


@pytest.fixture
def make_wav(tmp_path):
    """Write a real 16-bit PCM WAV (a tone) of `seconds`; returns its path."""
    def make(name: str = "call.wav", seconds: float = 3.0, *, rate: int = 8000,
             channels: int = 1, folder: Path | None = None) -> Path:
        path = (folder or tmp_path / "wav") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = int(seconds * rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(frames))
        data = b"".join(struct.pack("<h", s) * channels for s in samples)
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(channels)
            handle.setsampwidth(2)
            handle.setframerate(rate)
            handle.writeframes(data)
        return path
    return make


@pytest.fixture
def wav_bytes(make_wav, tmp_path):
    """The bytes of a real mono WAV of `seconds` (what XAPI's download returns)."""
    def make(seconds: float = 2.0) -> bytes:
        return make_wav(f"bytes-{seconds}.wav", seconds, folder=tmp_path / "wav-bytes").read_bytes()
    return make


@pytest.fixture
def probe():
    """ffprobe a file: {"codec", "channels", "format", "bit_rate", "duration_s"}.

    `duration_s` is what a player plays: the decoded samples. ffprobe's own MP3 duration counts
    whole frames including the encoder's padding (up to ~0.2 s at 8 kHz) that players trim.
    """
    def run(path: Path) -> dict:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
             str(path)], capture_output=True, check=True).stdout
        info = json.loads(out)
        stream = info["streams"][0]
        rate = int(stream["sample_rate"])
        pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                              "-ar", str(rate), "-"], capture_output=True, check=True).stdout
        return {"codec": stream["codec_name"], "channels": stream["channels"],
                "format": info["format"]["format_name"],
                "bit_rate": int(info["format"].get("bit_rate", 0)),
                "duration_s": len(pcm) / 2 / rate}
    return run


@pytest.fixture
def mp3_dir(tmp_path) -> Path:
    """An empty MP3 folder."""
    folder = tmp_path / "mp3"
    folder.mkdir()
    return folder


@pytest.fixture
def recordings_config(tmp_path, mp3_dir):
    """A Config for the recordings parts; keyword overrides as {"section": {"key": "value"}}."""
    def make(**sections: dict[str, str]) -> Config:
        values = {
            "pbx": {"url": "http://pbx.test:5001", "client_id": "gw", "client_secret": "s3cret",
                    "timezone": "Europe/Prague"},
            "webapi": {"key": LINK_KEY, "public_url": "https://gw.example.com:5001"},
            "webhooks": {"url": "http://crm.test/hook"},
            "recordings": {"mp3_dir": str(mp3_dir), "wait_s": "5", "workers": "2"},
            "storage": {"state_dir": str(tmp_path / "state")},
        }
        for section, keys in sections.items():
            values.setdefault(section, {}).update(keys)
        return from_dict(values, source="test", environ={})
    return make


class StandInXapi:
    """Answers /Recordings from `rows` and downloads from `wavs`; `error` makes every call fail."""

    def __init__(self, rows=(), wavs=None, error=None):
        self.rows = list(rows)
        self.wavs = wavs or {}
        self.error = error
        self.queries: list[str] = []
        self.downloads: list[str] = []

    def list(self, entity_set, *, filter=None, orderby=None, **_):
        assert entity_set == "Recordings"
        self.queries.append(filter)
        if self.error:
            raise self.error
        return list(self.rows)

    def download(self, path):
        self.downloads.append(path)
        if self.error:
            raise self.error
        return self.wavs[int(path.split("recId=")[1].rstrip(")"))]


@pytest.fixture
def standin_xapi():
    """The StandInXapi class: a PBX's /Recordings without HTTP, for fetch and pipeline units."""
    return StandInXapi
