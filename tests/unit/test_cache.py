"""TtlCache: values expire after their ttl; loaders run only on a miss; clear() empties it."""
from __future__ import annotations

import pytest

from gateway.cache import TtlCache


class Now:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def test_entry_expires_after_the_default_ttl():
    now = Now()
    cache = TtlCache(5.0, now=now)
    cache.put("key", {"nums": ["100"]})

    now.value += 4.9
    fresh = cache.get("key")
    now.value += 0.1
    stale = cache.get("key")

    assert fresh == {"nums": ["100"]}
    assert stale is None


def test_entry_with_its_own_ttl_expires_earlier():
    now = Now()
    cache = TtlCache(5.0, now=now)
    cache.put("state", "Busy", ttl_s=1.0)

    now.value += 1.0

    assert cache.get("state") is None


def test_loader_runs_only_on_a_miss():
    cache = TtlCache(5.0, now=Now())
    calls: list[int] = []

    first = cache.get_or_load("key", lambda: calls.append(1) or "value")
    second = cache.get_or_load("key", lambda: calls.append(2) or "other")

    assert (first, second, calls) == ("value", "value", [1])


def test_failing_loader_caches_nothing():
    cache = TtlCache(5.0, now=Now())

    def fail() -> str:
        raise LookupError("no such extension")

    with pytest.raises(LookupError):
        cache.get_or_load("key", fail)

    assert cache.get_or_load("key", lambda: "loaded") == "loaded"


def test_clear_forgets_everything():
    cache = TtlCache(5.0, now=Now())
    cache.put("a", 1)
    cache.put("b", 2)

    cache.clear()

    assert (cache.get("a"), cache.get("b")) == (None, None)
