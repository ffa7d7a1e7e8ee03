"""GC pauses are measured by the collector's own callbacks, and only while installed."""

from __future__ import annotations

import gc

from line.loop.gc_watch import GcWatch


def test_pauses_are_recorded_while_installed() -> None:
    watch = GcWatch()
    gc.collect()
    assert watch.snapshot()["n"] == 0  # not installed: nothing recorded
    watch.install()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        watch.remove()
    snap = watch.snapshot()
    assert snap["n"] == 2 and snap["full"] == 1
    assert 0 <= snap["max"] < 10_000
    gc.collect()
    assert watch.snapshot()["n"] == 2  # removed again
