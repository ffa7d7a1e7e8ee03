"""What the HMI app reads: the station, its result log (read-only SQLite), the live view,
metrics, users; and the views built from them (status, health, shift counters, rejects).

Kept apart from the routes in ``app.py`` so the views can be tested without HTTP.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camera.source import CameraState
from line.config import HmiSection
from line.hmi.auth import Sessions, UserStore
from line.hmi.login_guard import DEFAULT_POLICY, LoginGuard, LoginThrottle, PasswordGate, ThrottlePolicy
from line.live import LiveView
from line.metrics import StationMetrics
from line.recipe_watch import RecipeWatcher
from line.recipes import SwitchAudit
from line.results import connect
from line.station import Station
from plc.sink import LinkState, ResultCode

log = logging.getLogger(__name__)

HISTOGRAM_EDGES_MS = (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 200, 500)


def shift_start(now: dt.datetime, starts: tuple[str, ...]) -> dt.datetime:
    """The latest configured shift boundary (local HH:MM) at or before ``now``."""
    if not starts:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = []
    for text in starts:
        hour, minute = (int(x) for x in text.split(":"))
        for days in (0, 1):
            t = (now - dt.timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
            if t <= now:
                candidates.append(t)
    return max(candidates)


@dataclass
class HmiContext:
    station: Station
    config: HmiSection
    users: UserStore
    live: LiveView | None = None
    metrics: StationMetrics | None = None
    watcher: RecipeWatcher | None = None
    sessions: Sessions = field(init=False)
    guard: LoginGuard = field(init=False)
    audits: deque[SwitchAudit] = field(default_factory=lambda: deque(maxlen=50))
    counters_reset_ns: int = 0
    login_policy: ThrottlePolicy = DEFAULT_POLICY
    _db: sqlite3.Connection | None = field(default=None, init=False)
    _db_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.config.session_ttl_s)
        self.guard = LoginGuard(self.users, LoginThrottle(self.login_policy), PasswordGate(wait_s=self.login_policy.hold_s), self.audit)

    def audit(self, kind: str, data: dict[str, Any]) -> None:
        """A security event into the station's event log (never a password)."""
        who = data.get("user") or data.get("by") or "?"
        where = data.get("address", "?")
        log.warning("%s: user %r from %s", kind, who, where)
        self.station.result_log.event(kind, "warning", f"{kind}: user {who!r} from {where}", data)

    # --- result log (read-only) ------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.station.result_log.db_path

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db_lock:
            if self._db is None:
                self._db = connect(self.db_path, readonly=True)
            return list(self._db.execute(query, params).fetchall())

    def close(self) -> None:
        self.guard.close()
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- views -------------------------------------------------------------------------------
    def shift_counters(self) -> dict[str, Any]:
        start = shift_start(dt.datetime.now().astimezone(), self.config.shift_starts)
        since_ns = max(int(start.timestamp() * 1e9), self.counters_reset_ns)
        rows = self.sql("SELECT result_code, COUNT(*) FROM results WHERE t_verdict_ns >= ? GROUP BY result_code", (since_ns,))
        by_code = {int(code): int(n) for code, n in rows}
        inspected = sum(by_code.values())
        passed = by_code.get(int(ResultCode.PASS), 0)
        return {
            "since": dt.datetime.fromtimestamp(since_ns / 1e9).astimezone().isoformat(timespec="seconds"),
            "shift_start": start.isoformat(timespec="seconds"),
            "inspected": inspected,
            "passed": passed,
            "rejected": by_code.get(int(ResultCode.REJECT), 0),
            "fail_safe": by_code.get(int(ResultCode.FAIL_SAFE_REJECT), 0) + by_code.get(int(ResultCode.HOLD), 0),
            "yield": round(passed / inspected, 4) if inspected else None,
        }

    def links(self) -> list[dict[str, str]]:
        out = [{"kind": "camera", "name": lane.camera_id, "state": lane.source.state.value,
                "ok": str(lane.source.state is CameraState.ACQUIRING).lower()} for lane in self.station.lanes]  # fmt: skip
        for sink in self.station.sinks:
            try:
                state = sink.link_state
            except Exception:
                state = LinkState.FAILED
            kind = "opcua" if "opcua" in sink.name else "plc"
            out.append({"kind": kind, "name": sink.name, "state": state.value, "ok": str(state is LinkState.CONNECTED).lower()})
        return out

    def health(self) -> dict[str, Any]:
        """ready | degraded | failed, with the reasons (``/healthz``)."""
        st = self.station
        failed: list[str] = []
        degraded: list[str] = []
        if not st._running:
            failed.append("station is not running")
        if st.book.active is None:
            failed.append("no active recipe")
        states = [lane.source.state for lane in st.lanes]
        if states and all(s is CameraState.FAILED for s in states):
            failed.append("every camera failed")
        for lane in st.lanes:
            if lane.source.state is not CameraState.ACQUIRING:
                degraded.append(f"camera {lane.camera_id} is {lane.source.state.value}")
        for sink in st.sinks:
            try:
                state = sink.link_state
            except Exception as exc:
                degraded.append(f"{sink.name} link state unknown: {exc}")
                continue
            if state is LinkState.FAILED:
                failed.append(f"{sink.name} failed")
            elif state is not LinkState.CONNECTED:
                degraded.append(f"{sink.name} is {state.value}")
        if st.result_log.dropped:
            degraded.append(f"result log queue dropped {st.result_log.dropped} records (kept in the journal)")
        if st.result_log.alarms:
            degraded.append(f"result log: {st.result_log.alarms[-1]}")
        if st.book.invalid:
            degraded.append(f"{len(st.book.invalid)} invalid recipe file(s)")
        status = "failed" if failed else "degraded" if degraded else "ready"
        return {"status": status, "reasons": failed + degraded, "active_recipe": st.book.active.recipe.id if st.book.active else None}

    def latency_histogram(self) -> dict[str, Any]:
        values = self.station.stats.verdict_latency.values()
        edges = np.array([*HISTOGRAM_EDGES_MS, max(1000.0, float(values.max()) + 1 if len(values) else 1000.0)])
        counts, _ = np.histogram(values, bins=edges)
        pct = self.station.stats.verdict_latency.percentiles()
        return {
            "edges_ms": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
            "percentiles_ms": {k: (None if isinstance(v, float) and math.isnan(v) else round(float(v), 3)) for k, v in pct.items()},
            "budget_ms": self.station.budget_s() * 1000,
        }

    def rejects(self, limit: int) -> list[dict[str, Any]]:
        rows = self.sql(
            "SELECT result_id, camera_id, part_id, recipe_id, reject_mask, defects_json, t_verdict_ns, image_ref FROM results"
            " WHERE result_code = ? AND image_ref != '' ORDER BY rowid DESC LIMIT ?", (int(ResultCode.REJECT), limit),
        )  # fmt: skip
        return [{"result_id": r[0], "camera_id": r[1], "part_id": r[2], "recipe_id": r[3], "reject_mask": r[4],
                 "defects": r[5], "time": _iso(r[6]), "image": f"/api/images/{r[7]}"} for r in rows]  # fmt: skip

    def events(self, limit: int) -> list[dict[str, Any]]:
        rows = self.sql("SELECT t_ns, kind, severity, message, data_json FROM events ORDER BY rowid DESC LIMIT ?", (limit,))
        return [{"time": _iso(r[0]), "kind": r[1], "severity": r[2], "message": r[3], "data": r[4]} for r in rows]

    def recipes(self) -> dict[str, Any]:
        book = self.station.book
        active = book.active.recipe.id if book.active else None
        warm = book.warm_ids()
        prep = book.preparing
        progress = None
        if prep is not None:
            progress = {"recipe_id": prep.recipe_id, "stage": prep.stage, "step": prep.step, "steps": prep.steps,
                        "elapsed_s": round((time.time_ns() - prep.started_ns) / 1e9, 2)}  # fmt: skip
        return {
            "active": active,
            "switching": self.station.switching,
            "preparing": progress,
            "recipes": [{"id": r.id, "code": r.code, "description": r.description, "classes": list(r.classes),
                         "warm": r.id in warm, "active": r.id == active} for r in sorted(book.recipes.values(), key=lambda r: r.code)],  # fmt: skip
            "invalid": [{"file": Path(f).name, "problems": [str(p) for p in problems]} for f, problems in sorted(book.invalid.items())],
            "recent_switches": [_audit_dict(a) for a in reversed(self.audits)],
        }

    def status(self) -> dict[str, Any]:
        st = self.station
        snap = st.snapshot()
        counts: dict[str, int] = snap["counts"]  # type: ignore[assignment]
        verdicts = counts.get("verdicts", 0)
        return {
            "station": st.station_id,
            "health": self.health(),
            "active_recipe": snap["active_recipe"],
            "switching": st.switching,
            "counters": {"parts": sum(lane.parts for lane in st.lanes), "verdicts": verdicts, "passed": counts.get("passed", 0),
                         "rejected": counts.get("rejected", 0), "fail_safe": counts.get("fail_safe", 0),
                         "yield": round(counts.get("passed", 0) / verdicts, 4) if verdicts else None},  # fmt: skip
            "shift": self.shift_counters(),
            "links": self.links(),
            "alarms": list(reversed(st.alarms[-20:])) + list(reversed(st.result_log.alarms[-5:])),
            "live": self.live.stats() if self.live else None,
        }


def _iso(t_ns: int) -> str:
    return dt.datetime.fromtimestamp(t_ns / 1e9).astimezone().isoformat(timespec="milliseconds")


def _audit_dict(a: SwitchAudit) -> dict[str, Any]:
    return {"time": _iso(a.t_ns), "from": a.from_id, "to": a.to_id, "source": a.source, "user": a.user, "ok": a.ok,
            "message": a.message, "prepare_s": round(a.prepare_s, 4), "switch_s": round(a.switch_s, 4), "warm": a.warm}  # fmt: skip
