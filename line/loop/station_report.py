"""What the station reports about itself, as plain data: the typed snapshot an embedding
program reads, and the judgement of a stop summary. Depends on no station code (the station
builds these), so nothing here can reach into the station's internals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CameraSnapshot:
    camera_id: str
    state: str  # camera.source.CameraState value
    parts: int  # parts seen (each gets exactly one verdict)
    queue_dropped: int


@dataclass(frozen=True)
class StationSnapshot:
    """The station at one moment, typed (``Station.view()``); ``Station.snapshot()`` is the
    fuller JSON-ready mapping the HMI and the metrics endpoint read."""

    station_id: str
    state: str  # line.loop.station_state.StationState value
    active_recipe: str | None
    status_bits: int  # the status register as last written to the PLC
    verdicts_since_start: int
    passed: int  # the operator's counters from here on (reset from the HMI or the PLC)
    rejected: int
    fail_safe: int
    cameras: tuple[CameraSnapshot, ...]
    alarms: tuple[str, ...]  # "kind: message", most recent first


def stop_ok(summary: dict[str, object]) -> bool:
    """Every part seen got a verdict and no verdict is lost (one kept in the journal for the
    next start is not lost)."""
    return summary["parts"] == summary["verdicts"] and not summary["lost"]
