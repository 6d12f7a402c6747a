"""A small thread-safe cache of PBX reads that may be a few seconds old.

The WebAPI keeps configuration answers for `[webapi] cache_s` and per-extension state for
`[webapi] state_cache_s`; any write command clears the whole cache, so a change made through the
gateway shows at once. Changes made elsewhere (the admin console, a phone registering) show within
those times.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")


class TtlCache:
    """Values by key, each valid for `ttl_s` (or the ttl given when it was stored)."""

    def __init__(self, ttl_s: float, *, now: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._now = now
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        """The value stored under `key` if it has not expired, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._now() >= entry[0]:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: Hashable, value: Any, ttl_s: float | None = None) -> None:
        with self._lock:
            self._entries[key] = (self._now() + (self._ttl_s if ttl_s is None else ttl_s), value)

    def get_or_load(self, key: Hashable, load: Callable[[], T], ttl_s: float | None = None) -> T:
        """The cached value, or `load()`'s result stored for next time (exceptions are not cached)."""
        value = self.get(key)
        if value is None:
            value = load()
            self.put(key, value, ttl_s)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
