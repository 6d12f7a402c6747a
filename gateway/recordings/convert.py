"""WAV to MP3 conversion: the pure ffmpeg command builder and the bounded, low-priority pool.

`mp3_stream` only describes the command (a test compares its argv). `ConversionPool` runs it:
at most `workers` ffmpeg processes at once, each under `nice`, each with a timeout, writing a
hidden temporary name in the destination folder that is renamed into place only when ffmpeg
succeeded, so the server never sees half a file. The source WAV is only ever read.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import threading
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

logger = logging.getLogger(__name__)

NICENESS = 10            # conversions yield the CPU to the request threads and the watcher
_STDERR_TAIL_CHARS = 300


def mp3_stream(src: str | os.PathLike[str], dst: str | os.PathLike[str], bitrate: str) -> Any:
    """The ffmpeg-python stream that turns WAV `src` into mono MP3 `dst` at `bitrate` (e.g. "32k").

    The format is named explicitly because `dst` is a temporary name without the .mp3 suffix.
    """
    return (
        ffmpeg.input(str(src))
        .output(str(dst), acodec="libmp3lame", ac=1, audio_bitrate=bitrate, f="mp3",
                map_metadata=-1)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
    )


@dataclass(frozen=True)
class ConversionResult:
    """The outcome of one conversion; `error` is a short reason when `is_ok` is false."""

    leg_id: str
    src: Path
    dst: Path
    is_ok: bool
    attempts: int
    error: str = ""


@dataclass(frozen=True)
class ConversionStatus:
    """Conversions since start, the pool size and the last failure (None when none)."""

    converted: int
    failed: int
    workers: int
    last_error: str | None


class _Permanent(Exception):
    """A failure that another attempt cannot fix (missing input, missing ffmpeg)."""


class ConversionPool:
    """Runs at most `workers` conversions at once; `submit` returns a Future[ConversionResult].

    Threads are created on the first submit. Failures are retried `attempts` times in all, then
    logged with the leg id and returned as a failed result; `submit` never raises for them.
    """

    def __init__(self, workers: int, timeout_s: float, *, bitrate: str = "32k", attempts: int = 3,
                 retry_delay_s: float = 1.0, ffmpeg_cmd: str = "ffmpeg") -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self.bitrate = bitrate
        self.attempts = max(1, attempts)
        self.retry_delay_s = retry_delay_s
        self._ffmpeg_cmd = ffmpeg_cmd
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffmpeg")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._counts = {"converted": 0, "failed": 0}
        self._last_error: str | None = None

    def submit(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
               leg_id: str) -> Future[ConversionResult]:
        """Queue one conversion; the Future resolves to a ConversionResult."""
        return self._executor.submit(self._convert, Path(src), Path(dst), leg_id)

    def convert(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                leg_id: str) -> ConversionResult:
        """Convert through the pool and wait for the result (call from a non-pool thread)."""
        try:
            return self.submit(src, dst, leg_id=leg_id).result()
        except (CancelledError, RuntimeError):   # stopped before or while queued
            return ConversionResult(leg_id, Path(src), Path(dst), False, 0, "stopped")

    def stop(self, timeout_s: float) -> None:
        """Cancel queued conversions, give running ones `timeout_s`, then kill what is left."""
        self._stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        done = threading.Event()

        def drain() -> None:
            self._executor.shutdown(wait=True)
            done.set()

        waiter = threading.Thread(target=drain, name="ffmpeg-stop", daemon=True)
        waiter.start()
        if not done.wait(timeout_s):
            with self._lock:
                for process in list(self._running):
                    process.kill()
            waiter.join(1.0)

    def status(self) -> ConversionStatus:
        """Counters since start and the last failure (None when none)."""
        with self._lock:
            return ConversionStatus(converted=self._counts["converted"], failed=self._counts["failed"],
                                    workers=self.workers, last_error=self._last_error)

    # --- in a pool thread ---------------------------------------------------------------------

    def _convert(self, src: Path, dst: Path, leg_id: str) -> ConversionResult:
        error = ""
        attempt = 0
        while attempt < self.attempts and not self._stop.is_set():
            attempt += 1
            try:
                self._run_once(src, dst)
            except _Permanent as exc:
                error = str(exc)
                break
            except Exception as exc:  # one failed run must not end the pool thread
                error = str(exc) or exc.__class__.__name__
                logger.warning("leg %s: converting %s failed (attempt %s of %s): %s",
                               leg_id, src.name, attempt, self.attempts, error)
                if attempt < self.attempts and self._stop.wait(self.retry_delay_s * attempt):
                    break
                continue
            with self._lock:
                self._counts["converted"] += 1
            logger.info("leg %s: converted %s to %s", leg_id, src.name, dst.name)
            return ConversionResult(leg_id, src, dst, True, attempt)
        error = error or "stopped"
        with self._lock:
            self._counts["failed"] += 1
            self._last_error = f"leg {leg_id}: {error}"
        logger.error("leg %s: could not convert %s to %s: %s", leg_id, src, dst.name, error)
        return ConversionResult(leg_id, src, dst, False, attempt, error)

    def _run_once(self, src: Path, dst: Path) -> None:
        if not src.is_file():
            raise _Permanent(f"no such WAV file: {src}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        temporary = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
        executable = shutil.which(self._ffmpeg_cmd)
        if executable is None:
            raise _Permanent(f"{self._ffmpeg_cmd} is not installed")
        argv = mp3_stream(src, temporary, self.bitrate).compile(cmd=executable)
        nice = shutil.which("nice")
        if nice:
            argv = [nice, "-n", str(NICENESS), *argv]
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            with self._lock:
                self._running.add(process)
            try:
                _out, stderr = process.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise TimeoutError(f"ffmpeg took longer than {self.timeout_s:g}s") from None
            finally:
                with self._lock:
                    self._running.discard(process)
            if process.returncode != 0:
                tail = stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL_CHARS:]
                raise RuntimeError(f"ffmpeg exited with {process.returncode}: {tail}")
            if not temporary.is_file() or temporary.stat().st_size == 0:
                raise RuntimeError("ffmpeg wrote no output")
            os.replace(temporary, dst)
        finally:
            temporary.unlink(missing_ok=True)
