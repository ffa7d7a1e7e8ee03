"""What the station reports about itself: the state mirrored to the MES server, and the
snapshot the HMI, the metrics endpoint and the bench read. Kept out of ``line/loop/station.py``,
which is the hot path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from camera.source import CameraState

if TYPE_CHECKING:
    from line.loop.station import Station


def mes_state(station: Station) -> dict[str, object]:
    counts = station.stats.counts
    lanes = station.lanes
    cameras_up = all(lane.source.state is CameraState.ACQUIRING and not lane.camera_errors for lane in lanes)
    order = ("modbus_client", "opcua_client", "modbus_server")
    plc_links = [s.link_state.value for name in order for s in station.sinks if s.name == name]
    active = station.book.active
    return {
        "inspected": counts.get("verdicts", 0), "rejected": counts.get("rejected", 0),
        "fail_safe": counts.get("fail_safe", 0), "deadline_misses": counts.get("fail_safe.timeout", 0),
        "camera_link": "connected" if cameras_up else "disconnected",
        "plc_link": plc_links[0] if plc_links else "connected",
        "active_recipe": active.recipe.id if active else None,
        "alarms": tuple((a.kind.value, a.message) for a in station.alarm_set.snapshot()),
    }  # fmt: skip


def snapshot(station: Station) -> dict[str, object]:
    active = station.book.active
    log = station.result_log
    return {
        "station": station.station_id,
        "active_recipe": active.recipe.id if active else station._final_recipe,
        # why it is the active one: the start-up choice (configured, --recipe, restored from the
        # last switch, or a saved recipe that had become invalid) or who switched it since
        "active_recipe_reason": station.book.active_reason,
        "status": int(station._status),
        "cameras": {lane.camera_id: {"state": lane.source.state.value, **lane.source.counters.snapshot(),
                                     "queue_dropped": lane.queue.dropped} for lane in station.lanes},  # fmt: skip
        "sinks": {s.name: {"link": s.link_state.value, **s.counters()} for s in station.sinks},
        "log": {"written": log.written, "dropped": log.dropped, "pending": log.pending(), "backlog": log.backlog(),
                "storage_fault": log.storage_fault(), "journal_bytes": log.journal.size_bytes(), "lost": log.lost},
        "verdicts_since_start": station.verdicts_since_start,
        "gc_pause_ms": station.gc_watch.snapshot(),
        **station.stats.snapshot(),
    }


def stop_summary(station: Station) -> dict[str, object]:
    """What a stop tells the operator and the exit status: counted from the station's own
    start, never from the counters the operator resets."""
    parts = sum(lane.parts for lane in station.lanes)
    log = station.result_log
    return {
        "parts": parts, "verdicts": station.verdicts_since_start,
        "kept_in_journal": log.journal.uncommitted(), "lost": log.lost, **station.stop_report,
    }  # fmt: skip


def stop_ok(summary: dict[str, object]) -> bool:
    """Every part seen got a verdict and no verdict is lost (one kept in the journal for the
    next start is not lost)."""
    return summary["parts"] == summary["verdicts"] and not summary["lost"]
