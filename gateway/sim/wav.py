"""The audio the simulator records and streams: a quiet 425 Hz tone, 8 kHz mono 16-bit PCM."""
from __future__ import annotations

import array
import io
import math
import wave

SAMPLE_RATE = 8000

_TONE_SECOND: bytes | None = None


def _tone_second() -> bytes:
    global _TONE_SECOND  # a cache of constant bytes, not state
    if _TONE_SECOND is None:
        samples = array.array("h", (int(600 * math.sin(2 * math.pi * 425 * n / SAMPLE_RATE))
                                    for n in range(SAMPLE_RATE)))
        _TONE_SECOND = samples.tobytes()
    return _TONE_SECOND


def tone_wav(seconds: float) -> bytes:
    """A quiet 425 Hz tone as an 8 kHz mono 16-bit PCM WAV, `seconds` long."""
    second = _tone_second()
    whole, rest = divmod(max(0.0, seconds), 1.0)
    frames = second * int(whole) + second[:int(rest * SAMPLE_RATE) * 2]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(frames)
    return buffer.getvalue()


def pcm_chunk(seconds: float) -> bytes:
    """Raw PCM (8 kHz mono 16-bit) of the same tone, for the media stream."""
    second = _tone_second()
    return (second * (int(seconds) + 1))[:int(seconds * SAMPLE_RATE) * 2]

