"""Benchmark: the pipeline's conversion pool against plain `ffmpeg` on the same WAVs.

Generates a batch of PBX-like WAVs (8 kHz, mono, 16-bit), converts them through
`ConversionPool` and through plain `ffmpeg` started by `xargs -P <workers>` from a shell (same
parallelism, same encoder options), and prints both times and their ratio. Target: the pool
within 1.2x of plain ffmpeg (its extra cost is `nice`, a temporary name and a rename per file).

    .venv/bin/python bench/convert_bench.py [--files 20] [--seconds 60] [--workers 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import math
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.recordings.convert import ConversionPool

RATE = 8000


def write_wav(path: Path, seconds: float, seed: int) -> None:
    """A speech-band tone sweep with some noise, so the encoder has real work to do."""
    frames = bytearray()
    state = seed * 7919 + 1
    for i in range(int(seconds * RATE)):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        noise = (state >> 16) % 2000 - 1000
        tone = 6000 * math.sin(2 * math.pi * (300 + (i % RATE) / 8) * i / RATE)
        frames += struct.pack("<h", max(-32768, min(32767, int(tone) + noise)))
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(bytes(frames))


def run_pool(wavs: list[Path], out_dir: Path, workers: int, bitrate: str) -> float:
    pool = ConversionPool(workers, 600, bitrate=bitrate)
    started = time.perf_counter()
    futures = [pool.submit(wav, out_dir / f"{wav.stem}.mp3", leg_id=wav.stem) for wav in wavs]
    results = [future.result() for future in futures]
    elapsed = time.perf_counter() - started
    pool.stop(timeout_s=5)
    failed = [r for r in results if not r.is_ok]
    if failed:
        raise SystemExit(f"pool: {len(failed)} conversion(s) failed: {failed[0].error}")
    return elapsed


def run_plain(wavs: list[Path], out_dir: Path, workers: int, bitrate: str) -> float:
    names = " ".join(shlex.quote(str(wav)) for wav in wavs)
    script = (f"printf '%s\\n' {names} | xargs -P {workers} -I{{}} sh -c "
              f"'ffmpeg -nostdin -hide_banner -loglevel error -y -i \"$1\" -ac 1 -b:a {bitrate} "
              f"-acodec libmp3lame {shlex.quote(str(out_dir))}/$(basename \"$1\" .wav).mp3' _ {{}}")
    started = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bitrate", default="32k")
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        root = Path(tmp)
        wav_dir = root / "wav"
        wav_dir.mkdir()
        wavs = []
        for n in range(args.files):
            path = wav_dir / f"261124100000_{n}-1.wav"
            write_wav(path, args.seconds, n)
            wavs.append(path)
        pool_times, plain_times = [], []
        for round_no in range(args.rounds):
            for name, runner, times in (("plain", run_plain, plain_times), ("pool", run_pool, pool_times)):
                out_dir = root / f"{name}-{round_no}"
                out_dir.mkdir()
                times.append(runner(wavs, out_dir, args.workers, args.bitrate))
                if len(list(out_dir.glob("*.mp3"))) != len(wavs):
                    raise SystemExit(f"{name}: not every file was converted")
        plain, pool = statistics.median(plain_times), statistics.median(pool_times)
        print(f"{args.files} WAVs x {args.seconds:g} s, {args.workers} workers, {args.bitrate}, "
              f"median of {args.rounds}")
        print(f"plain ffmpeg (xargs -P {args.workers}): {plain:.2f} s")
        print(f"pipeline ConversionPool:        {pool:.2f} s")
        print(f"ratio pool/plain: {pool / plain:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
