"""WAV to MP3: the exact ffmpeg command, and the pool's real conversions, retries and reports."""
from __future__ import annotations

import hashlib
import logging

import pytest

from gateway.recordings.convert import ConversionPool, mp3_stream


def test_mp3_stream_compiles_to_mono_libmp3lame_at_bitrate():
    argv = mp3_stream("/in/a.wav", "/out/.a.mp3.part", "32k").compile()

    assert argv == [
        "ffmpeg", "-i", "/in/a.wav",
        "-f", "mp3", "-b:a", "32k", "-ac", "1", "-acodec", "libmp3lame", "-map_metadata", "-1",
        "/out/.a.mp3.part",
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
    ]


@pytest.fixture
def pool():
    """A real two-worker pool with quick retries."""
    conversions = ConversionPool(2, 60, bitrate="32k", retry_delay_s=0)
    yield conversions
    conversions.stop(timeout_s=5)


def test_convert_writes_valid_mono_mp3_of_same_duration(pool, make_wav, mp3_dir, probe):
    wav = make_wav(seconds=3.7)
    dst = mp3_dir / "211230102738_669-1-1.mp3"

    result = pool.convert(wav, dst, leg_id="211230102738_669-1")

    info = probe(dst)
    assert result.is_ok and result.attempts == 1 and result.error == ""
    assert (info["codec"], info["channels"], info["format"]) == ("mp3", 1, "mp3")
    assert abs(info["duration_s"] - 3.7) < 0.1
    assert 28_000 <= info["bit_rate"] <= 36_000


def test_convert_downmixes_stereo_to_mono(pool, make_wav, mp3_dir, probe):
    wav = make_wav("stereo.wav", seconds=1.0, rate=16000, channels=2)

    pool.convert(wav, mp3_dir / "211230102738_669-1-1.mp3", leg_id="211230102738_669-1")

    assert probe(mp3_dir / "211230102738_669-1-1.mp3")["channels"] == 1


def test_convert_never_touches_the_source_wav(pool, make_wav, mp3_dir):
    wav = make_wav(seconds=1.0)
    before = (hashlib.sha256(wav.read_bytes()).hexdigest(), wav.stat().st_mtime_ns)

    pool.convert(wav, mp3_dir / "211230102738_669-1-1.mp3", leg_id="211230102738_669-1")

    assert (hashlib.sha256(wav.read_bytes()).hexdigest(), wav.stat().st_mtime_ns) == before


def test_convert_leaves_only_the_final_name(pool, make_wav, mp3_dir):
    wavs = [make_wav(f"{n}.wav", seconds=0.5) for n in range(4)]

    futures = [pool.submit(w, mp3_dir / f"211230102738_669-1-{n + 1}.mp3", leg_id="211230102738_669-1")
               for n, w in enumerate(wavs)]

    assert all(f.result().is_ok for f in futures)
    assert sorted(p.name for p in mp3_dir.iterdir()) == [f"211230102738_669-1-{n}.mp3" for n in range(1, 5)]


def test_convert_of_broken_wav_is_retried_then_reported(pool, tmp_path, mp3_dir, caplog):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00not really a wave file")
    caplog.set_level(logging.WARNING, logger="gateway.recordings.convert")

    result = pool.convert(broken, mp3_dir / "211230102738_669-1-1.mp3", leg_id="211230102738_669-1")

    assert not result.is_ok and result.attempts == 3
    assert "ffmpeg exited" in result.error
    assert list(mp3_dir.iterdir()) == []
    assert any("211230102738_669-1" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert pool.status().failed == 1 and "211230102738_669-1" in pool.status().last_error


def test_convert_of_missing_wav_is_not_retried(pool, tmp_path, mp3_dir):
    result = pool.convert(tmp_path / "gone.wav", mp3_dir / "211230102738_669-1-1.mp3",
                          leg_id="211230102738_669-1")

    assert not result.is_ok and result.attempts == 1 and "no such WAV" in result.error


def test_convert_past_timeout_is_killed_and_reported(make_wav, mp3_dir):
    slow = ConversionPool(1, 0.001, retry_delay_s=0, attempts=2)
    wav = make_wav(seconds=30)

    result = slow.convert(wav, mp3_dir / "211230102738_669-1-1.mp3", leg_id="211230102738_669-1")
    slow.stop(timeout_s=5)

    assert not result.is_ok and result.attempts == 2 and "longer than" in result.error
    assert list(mp3_dir.iterdir()) == []


def test_convert_without_ffmpeg_reports_it(make_wav, mp3_dir):
    pool = ConversionPool(1, 10, ffmpeg_cmd="no-such-ffmpeg-binary", retry_delay_s=0)

    result = pool.convert(make_wav(seconds=0.2), mp3_dir / "211230102738_669-1-1.mp3",
                          leg_id="211230102738_669-1")
    pool.stop(timeout_s=1)

    assert not result.is_ok and result.attempts == 1 and "not installed" in result.error


def test_convert_runs_ffmpeg_at_low_priority(pool, make_wav, mp3_dir, monkeypatch):
    import subprocess
    seen: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording_popen(argv, *args, **kwargs):
        seen.append(list(argv))
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)

    pool.convert(make_wav(seconds=0.2), mp3_dir / "211230102738_669-1-1.mp3", leg_id="211230102738_669-1")

    assert seen[0][1:3] == ["-n", "10"] and seen[0][0].endswith("nice")
