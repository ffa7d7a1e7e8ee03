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
from line.app.config import HmiSection
from line.flywheel.service import Flywheel
from line.hmi.auth import Sessions, User, UserStore
from line.hmi.live import LiveView
from line.hmi.metrics import StationMetrics
from line.login_guard import DEFAULT_POLICY, LoginGuard, LoginThrottle, PasswordGate, ThrottlePolicy
from line.loop.station import Station
from line.recipes.book import SwitchAudit
from line.recipes.watch import RecipeWatcher
from line.results.log import connect
from plc.vocabulary import LinkState, ResultCode

log = logging.getLogger(__name__)

HISTOGRAM_EDGES_MS = (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 200, 500)
CHART_BUCKETS = 48  # reject-rate chart: at most this many bars over the shift
CHART_REFRESH_S = 10.0  # the chart scans the shift's rows: not at every status poll
WAITING_FOR = {"mes": "waiting for MES", "broker": "waiting for the plant broker", "plc": "waiting for PLC"}
FAIL_SAFE_CODES = (int(ResultCode.FAIL_SAFE_REJECT), int(ResultCode.HOLD))


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
    flywheel: Flywheel | None = None  # capture, review, shadow, promotion (line/flywheel/)
    sessions: Sessions = field(init=False)
    guard: LoginGuard[User] = field(init=False)
    audits: deque[SwitchAudit] = field(default_factory=lambda: deque(maxlen=50))
    counters_reset_ns: int = 0
    _chart: tuple[float, dict[str, Any]] | None = field(default=None, init=False)
    login_policy: ThrottlePolicy = DEFAULT_POLICY
    _db: sqlite3.Connection | None = field(default=None, init=False)
    _db_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.config.session_ttl_s)
        self.guard = LoginGuard(self.users.authenticate, LoginThrottle(self.login_policy),
                                PasswordGate(wait_s=self.login_policy.hold_s, thread_name="hmi-password"), self.audit)

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
        rows = self.sql("SELECT result_code, reason, COUNT(*) FROM results WHERE t_verdict_ns >= ? GROUP BY result_code, reason",
                        (since_ns,))  # fmt: skip
        by_code: dict[int, int] = {}
        by_reason: dict[str, int] = {}
        for code, reason, n in rows:
            by_code[int(code)] = by_code.get(int(code), 0) + int(n)
            if int(code) in FAIL_SAFE_CODES:
                by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + int(n)
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
            "fail_safe_reasons": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        }

    def reject_chart(self) -> dict[str, Any]:
        """Reject and fail-safe rate over the shift in equal time buckets (at most
        ``CHART_BUCKETS``, each a whole number of minutes), recomputed every ``CHART_REFRESH_S``."""
        now = time.monotonic()
        if self._chart is not None and now - self._chart[0] < CHART_REFRESH_S:
            return self._chart[1]
        start = shift_start(dt.datetime.now().astimezone(), self.config.shift_starts)
        start_ns = int(start.timestamp() * 1e9)
        elapsed_s = max(60.0, time.time() - start.timestamp())
        bucket_s = 60 * math.ceil(elapsed_s / CHART_BUCKETS / 60)
        bucket_ns = bucket_s * 1_000_000_000
        rows = self.sql(
            "SELECT (t_verdict_ns - ?) / ? AS b, COUNT(*), SUM(result_code = ?), SUM(result_code IN (?, ?)) FROM results"
            " WHERE t_verdict_ns >= ? GROUP BY b ORDER BY b", (start_ns, bucket_ns, int(ResultCode.REJECT), *FAIL_SAFE_CODES, start_ns),
        )  # fmt: skip
        counted = {int(b): (int(n), int(r or 0), int(f or 0)) for b, n, r, f in rows}
        # every bucket from the shift's start to now, empty ones too: the chart's axis is the shift
        buckets = [{"start": _iso(start_ns + b * bucket_ns), "parts": counted.get(b, (0, 0, 0))[0],
                    "rejected": counted.get(b, (0, 0, 0))[1], "fail_safe": counted.get(b, (0, 0, 0))[2]}
                   for b in range(max([math.ceil(elapsed_s / bucket_s), *[b + 1 for b in counted]]))]  # fmt: skip
        chart = {"shift_start": start.isoformat(timespec="seconds"), "bucket_s": bucket_s, "buckets": buckets}
        self._chart = (now, chart)
        return chart

    def alarms(self) -> list[dict[str, Any]]:
        """The station's active alarms (line/loop/alarms.py), times in local ISO form."""
        out = []
        for alarm in self.station.alarm_set.snapshot():
            item = alarm.as_dict()
            item["first_seen"] = _iso(int(alarm.first_seen * 1e9))
            item["last_seen"] = _iso(int(alarm.last_seen * 1e9))
            out.append(item)
        return out

    def links(self) -> list[dict[str, str]]:
        """Cameras and sinks with what an operator is told: ``status`` ok | waiting | bad. A link
        that never connected is waiting (for the PLC, for MES), not broken."""
        out = [{"kind": "camera", "name": lane.camera_id, "state": lane.source.state.value,
                "ok": str(lane.source.state is CameraState.ACQUIRING).lower(),
                "status": "ok" if lane.source.state is CameraState.ACQUIRING else "bad"} for lane in self.station.lanes]  # fmt: skip
        monitor = self.station.alarm_monitor
        for sink in self.station.sinks:
            try:
                state = sink.link_state
            except Exception:
                state = LinkState.FAILED
            kind = "mes" if "mes" in sink.name else "broker" if sink.name == "mqtt_uplink" else "plc"
            shown = state.value
            status = "ok" if state is LinkState.CONNECTED else "bad"
            if status == "bad" and state is not LinkState.FAILED and not monitor.ever_connected(sink.name):
                shown, status = WAITING_FOR[kind], "waiting"
            out.append({"kind": kind, "name": sink.name, "state": shown, "ok": str(state is LinkState.CONNECTED).lower(), "status": status})
        return out

    def health(self) -> dict[str, Any]:
        """starting | ready | degraded | failed, with the reasons (``/healthz``)."""
        st = self.station
        failed: list[str] = []
        degraded: list[str] = []
        if st.phase == "starting":  # the HMI comes up before the cameras: not an error yet
            return {"status": "starting", "reasons": ["the station is starting"],
                    "active_recipe": st.book.active.recipe.id if st.book.active else None}  # fmt: skip
        if st.phase != "running":
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
            elif state is not LinkState.CONNECTED and st.alarm_monitor.ever_connected(sink.name):
                degraded.append(f"{sink.name} is {state.value}")  # never connected: waiting, not degraded
        if st.result_log.dropped:
            degraded.append(f"result log queue dropped {st.result_log.dropped} records (kept in the journal)")
        degraded.extend(f"{a.title}: {a.message}" for a in st.alarm_set.snapshot() if a.kind.value != "camera_lost")
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
            "active_recipe_reason": snap["active_recipe_reason"],
            "switching": st.switching,
            # deciding | halting | halted | ready: halted remotely (OPC 40100), parts get the fail-safe result
            "run_mode": snap["run_mode"],
            "counters": {"parts": sum(lane.parts for lane in st.lanes), "verdicts": verdicts, "passed": counts.get("passed", 0),
                         "rejected": counts.get("rejected", 0), "fail_safe": counts.get("fail_safe", 0),
                         "yield": round(counts.get("passed", 0) / verdicts, 4) if verdicts else None},  # fmt: skip
            "shift": self.shift_counters(),
            "links": self.links(),
            "alarms": self.alarms(),
            "fail_safe_reasons": {k.removeprefix("fail_safe."): v for k, v in sorted(counts.items()) if k.startswith("fail_safe.")},
            "reject_chart": self.reject_chart(),
            "live": self.live.stats() if self.live else None,
        }


def _iso(t_ns: int) -> str:
    return dt.datetime.fromtimestamp(t_ns / 1e9).astimezone().isoformat(timespec="milliseconds")


def _audit_dict(a: SwitchAudit) -> dict[str, Any]:
    return {"time": _iso(a.t_ns), "from": a.from_id, "to": a.to_id, "source": a.source, "user": a.user, "ok": a.ok,
            "message": a.message, "prepare_s": round(a.prepare_s, 4), "switch_s": round(a.switch_s, 4), "warm": a.warm}  # fmt: skip
