"""The audio the simulator records and streams: quiet tones, 8 kHz mono 16-bit PCM.

The media stream plays 425 Hz. Each recording plays its own tone (`tone_hz(recording id)`), so a
test can tell which recording a converted file holds by listening to it (its dominant frequency).
"""
from __future__ import annotations

import array
import io
import math
import wave

SAMPLE_RATE = 8000

STREAM_HZ = 425
TONE_STEP_HZ = 50            # recording tones: 400, 450, ... 2350 Hz, repeating every 40 ids
TONE_COUNT = 40

_TONE_SECONDS: dict[int, bytes] = {}


def tone_hz(recording_id: int) -> int:
    """The tone of recording `recording_id`: distinct for any 40 consecutive ids."""
    return 400 + TONE_STEP_HZ * (recording_id % TONE_COUNT)


def _tone_second(hz: int = STREAM_HZ) -> bytes:
    second = _TONE_SECONDS.get(hz)  # a cache of constant bytes, not state
    if second is None:
        samples = array.array("h", (int(600 * math.sin(2 * math.pi * hz * n / SAMPLE_RATE))
                                    for n in range(SAMPLE_RATE)))
        second = _TONE_SECONDS[hz] = samples.tobytes()
    return second


def tone_wav(seconds: float, hz: int = STREAM_HZ) -> bytes:
    """A quiet `hz` tone as an 8 kHz mono 16-bit PCM WAV, `seconds` long."""
    second = _tone_second(hz)
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

