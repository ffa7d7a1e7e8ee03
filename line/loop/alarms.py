"""The station's one alarm set: every alarm is raised and cleared here, and every face (the
HMI, the OPC UA server, the Modbus status bits, ``/metrics``) shows this set and nothing else.

Why one set: when each face worked out its own alarms, they disagreed (the HMI said "none"
while the OPC UA server had a deadline alarm). Now the station's monitor turns its readings
into alarms once a second (:class:`AlarmMonitor`), a few places raise event alarms directly
(an engine that cannot meet the recipe budget, a PLC asking for an unknown recipe), and the
faces only read :meth:`AlarmSet.snapshot`.

Condition alarms (rates, links, backlog, storage) clear themselves when the condition is
gone; event alarms stay until the operator clears them (Modbus command 2).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Clock = Callable[[], float]


class AlarmKind(str, Enum):
    """Named alarm kinds. The values are the names MES clients see (OPC UA ``AlarmName``) and
    the ``kind`` label of ``linecheck_alarm_active`` in ``/metrics``."""

    FAIL_SAFE_RATE = "fail_safe_rate"
    DEADLINE_MISSES = "deadline_misses"
    CAMERA_LOST = "camera_lost"
    PLC_LINK_LOST = "plc_link_lost"
    LOG_BACKLOG = "log_backlog"
    STORAGE_FAULT = "storage_fault"
    ENGINE_BELOW_BUDGET = "engine_below_budget"
    INFERENCE_ERROR = "inference_error"
    RECIPE_REQUEST_REFUSED = "recipe_request_refused"
    STATION = "station_alarm"  # a free-text alarm of no other kind
    # the plant MQTT uplink (line/uplink): the broker unreachable or refusing the login; the
    # outbox past its threshold, or messages dropped by its policy or refused by the broker
    MQTT_LINK_LOST = "mqtt_link_lost"
    MQTT_OUTBOX = "mqtt_outbox"


# kinds that stop the station from doing its job as promised: they also set the ERROR bit
ERROR_KINDS = frozenset({AlarmKind.CAMERA_LOST, AlarmKind.PLC_LINK_LOST, AlarmKind.STORAGE_FAULT})

TITLES = {
    AlarmKind.FAIL_SAFE_RATE: "Many fail-safe rejects",
    AlarmKind.DEADLINE_MISSES: "Parts decided too late",
    AlarmKind.CAMERA_LOST: "Camera lost",
    AlarmKind.PLC_LINK_LOST: "PLC connection lost",
    AlarmKind.LOG_BACKLOG: "Result log falling behind",
    AlarmKind.STORAGE_FAULT: "Storage fault",
    AlarmKind.ENGINE_BELOW_BUDGET: "Inspection too slow for the recipe",
    AlarmKind.INFERENCE_ERROR: "Inspection error",
    AlarmKind.RECIPE_REQUEST_REFUSED: "Recipe request refused",
    AlarmKind.STATION: "Station alarm",
    AlarmKind.MQTT_LINK_LOST: "Plant MQTT broker unreachable",
    AlarmKind.MQTT_OUTBOX: "Plant MQTT messages waiting or lost",
}


class AlarmLimits(BaseModel):
    """When a condition alarm is raised. Rates are judged over a sliding window so that a
    single bad part does not alarm and a burst does not stay alarmed for the whole shift."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float = Field(default=60.0, gt=0, le=3600, description="sliding window for the rate alarms")
    fail_safe_rate: float = Field(
        default=0.05, gt=0, le=1, description="fail-safe share of parts in the window"
    )
    min_parts: int = Field(
        default=20, ge=1, description="parts in the window before the fail-safe rate is judged"
    )
    deadline_misses: int = Field(
        default=5, ge=0, description="deadline misses in the window above which to alarm"
    )
    log_backlog: int = Field(default=500, ge=1, description="records waiting for the result log")


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    message: str
    first_seen: float  # wall clock (time.time()), as the faces show it
    last_seen: float
    count: int  # occurrences since the operator last cleared the alarms

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "title": self.title, "message": self.message, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "count": self.count}  # fmt: skip


class AlarmSet:
    """Active alarms by kind; thread-safe (the monitor, lanes, PLC and HMI workers all call in).

    ``raise_`` of an inactive alarm counts one occurrence; of an active one it updates the
    message and last-seen time, and counts one more occurrence only for an event (``repeat``:
    the same fault happened again), not for a condition that still holds. ``clear`` removes
    it from the active set; the occurrence count lasts until ``clear_all`` (operator reset).
    Listeners hear each transition (raised / cleared) once, outside the lock."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._active: dict[AlarmKind, Alarm] = {}
        self._occurrences: dict[AlarmKind, int] = dict.fromkeys(AlarmKind, 0)
        self.listeners: list[Callable[[Alarm, bool], None]] = []

    def raise_(self, kind: AlarmKind, message: str, repeat: bool = True) -> Alarm:
        now = self._clock()
        with self._lock:
            old = self._active.get(kind)
            if old is None or repeat:
                self._occurrences[kind] += 1
            alarm = Alarm(kind, message, old.first_seen if old else now, now, self._occurrences[kind])
            self._active[kind] = alarm
        if old is None:
            self._tell(alarm, True)
        return alarm

    def clear(self, kind: AlarmKind) -> None:
        with self._lock:
            old = self._active.pop(kind, None)
        if old is not None:
            self._tell(old, False)

    def clear_all(self) -> None:
        """The operator's reset: every alarm and its occurrence count (a condition that still
        holds is raised again by the monitor's next look)."""
        for kind in list(self._active):
            self.clear(kind)
        with self._lock:
            self._occurrences = dict.fromkeys(AlarmKind, 0)

    def is_active(self, kind: AlarmKind) -> bool:
        return kind in self._active

    def snapshot(self) -> list[Alarm]:
        """Active alarms, most recently seen first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.last_seen, reverse=True)

    def _tell(self, alarm: Alarm, active: bool) -> None:
        for listener in list(self.listeners):
            listener(alarm, active)


def kind_of_message(message: str) -> AlarmKind:
    """The kind for a free-text alarm (the station's older ``_alarm(message)`` entry point)."""
    text = message.lower()
    if "budget" in text:
        return AlarmKind.ENGINE_BELOW_BUDGET
    if "recipe" in text:
        return AlarmKind.RECIPE_REQUEST_REFUSED
    return AlarmKind.STATION


@dataclass(frozen=True)
class Readings:
    """What the monitor looks at, once a second: cumulative counts and current states."""

    verdicts: int
    fail_safes: int
    deadline_misses: int
    cameras_lost: Mapping[str, str]  # camera id -> state, for cameras not acquiring
    plc_links: Mapping[str, str]  # sink name -> LinkState value
    log_backlog: int
    storage_fault: str | None


class AlarmMonitor:
    """Turns readings into raise/clear calls on the set (the station's monitor thread calls
    :meth:`check` once a second; tests call it with an injected clock)."""

    def __init__(
        self, alarms: AlarmSet, limits: AlarmLimits | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.alarms = alarms
        self.limits = limits or AlarmLimits()
        self._clock = clock
        self._history: deque[tuple[float, int, int, int]] = deque()
        self.plc_seen_connected: set[str] = set()
        self.checks = 0  # looks taken (tests wait on it instead of on the clock)

    def note_links(self, states: Mapping[str, str]) -> None:
        """Links that raise no alarm (the MES server) but are shown the same way."""
        self.plc_seen_connected.update(n for n, s in states.items() if s == "connected")

    def ever_connected(self, name: str) -> bool:
        return name in self.plc_seen_connected

    def plc_link_view(self, name: str, state: str) -> str:
        """What an operator is told of a PLC link: one that never connected is waiting."""
        if state != "connected" and name not in self.plc_seen_connected:
            return "waiting for PLC"
        return state

    def check(self, r: Readings) -> None:
        self.checks += 1
        now = self._clock()
        lim = self.limits
        self._history.append((now, r.verdicts, r.fail_safes, r.deadline_misses))
        while len(self._history) > 1 and now - self._history[1][0] >= lim.window_s:
            self._history.popleft()
        if r.verdicts < self._history[0][1]:  # counters were reset: start the window again
            self._history.clear()
            self._history.append((now, r.verdicts, r.fail_safes, r.deadline_misses))
        _, v0, f0, d0 = self._history[0]
        parts, fail_safes, misses = r.verdicts - v0, r.fail_safes - f0, r.deadline_misses - d0
        window = f"in the last {lim.window_s:g} s"
        self._set(AlarmKind.FAIL_SAFE_RATE, parts >= lim.min_parts and fail_safes > lim.fail_safe_rate * parts,
                  f"{fail_safes} of {parts} parts fail-safe {window}")  # fmt: skip
        self._set(
            AlarmKind.DEADLINE_MISSES,
            misses > lim.deadline_misses,
            f"{misses} parts missed their deadline {window}",
        )
        self._set(AlarmKind.CAMERA_LOST, bool(r.cameras_lost),
                  ", ".join(f"camera {c} is {s}" for c, s in sorted(r.cameras_lost.items())))  # fmt: skip
        for name, state in r.plc_links.items():
            if state == "connected":
                self.plc_seen_connected.add(name)
        lost = {n: s for n, s in r.plc_links.items() if n in self.plc_seen_connected and s in _LOST}
        self._set(
            AlarmKind.PLC_LINK_LOST, bool(lost), ", ".join(f"{n} is {s}" for n, s in sorted(lost.items()))
        )
        self._set(AlarmKind.LOG_BACKLOG, r.log_backlog > lim.log_backlog,
                  f"{r.log_backlog} records waiting for the result log (limit {lim.log_backlog})")  # fmt: skip
        self._set(AlarmKind.STORAGE_FAULT, r.storage_fault is not None, r.storage_fault or "")

    def _set(self, kind: AlarmKind, active: bool, message: str) -> None:
        if active:
            self.alarms.raise_(kind, message, repeat=False)
        elif self.alarms.is_active(kind):
            self.alarms.clear(kind)


_LOST = frozenset({"disconnected", "reconnecting", "failed"})
