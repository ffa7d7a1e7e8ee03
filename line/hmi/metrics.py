"""Prometheus metrics for a station (``/metrics`` of the HMI).

Two feeds, so that nothing is counted twice and nothing is polled on the hot path:

* an observer on the station (:meth:`StationMetrics.observe`, called once per decided part
  after the PLC write) feeds histograms and per-verdict counters;
* a collector reads ``station.snapshot()`` and the live view at scrape time for what the
  station already counts (camera frames and drops, queue drops, log drops, link states).

Each ``StationMetrics`` has its own registry (no global state, tests can build many).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from camera.source import CameraState
from line.loop.alarms import AlarmKind
from line.loop.station import Outcome, Station
from plc.vocabulary import LinkState, ResultCode

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)
_RESULT = {ResultCode.PASS: "pass", ResultCode.REJECT: "reject", ResultCode.FAIL_SAFE_REJECT: "fail_safe_reject",
           ResultCode.HOLD: "hold"}  # fmt: skip
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StationMetrics:
    def __init__(self, station: Station, live: Any = None, registry: CollectorRegistry | None = None) -> None:
        self.station = station
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.verdict_latency = Histogram("linecheck_verdict_latency_seconds", "t_ready to verdict", ["camera"],
                                         buckets=LATENCY_BUCKETS_S, registry=r)  # fmt: skip
        self.stage_latency = Histogram("linecheck_stage_latency_seconds", "time per pipeline stage", ["stage"],
                                       buckets=LATENCY_BUCKETS_S, registry=r)  # fmt: skip
        self.parts = Counter("linecheck_parts", "decided parts (one verdict each)", ["camera", "recipe", "result"], registry=r)
        self.rejects = Counter("linecheck_rejects", "parts rejected by the model's verdict", ["recipe", "bin_mask"], registry=r)
        self.fail_safes = Counter("linecheck_fail_safes", "fail-safe verdicts by reason", ["reason"], registry=r)
        self.deadline_misses = Counter("linecheck_deadline_misses", "parts decided fail-safe at their deadline", ["camera"], registry=r)
        self.undelivered = Counter("linecheck_undelivered", "verdicts a sink did not deliver", ["sink"], registry=r)
        r.register(_SnapshotCollector(station, live))
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def observe(self, outcome: Outcome) -> None:
        """Station observer: runs on the inference thread after the PLC write (~15-30 µs on
        our 2-core box); labelled children are looked up once and cached."""
        record = outcome.record
        verdict = outcome.verdict
        camera = record.camera_id
        self._child(self.verdict_latency, camera).observe(record.processing_us / 1e6)
        if record.timings_json and record.timings_json != "{}":
            for stage, ms in json.loads(record.timings_json).items():
                if ms >= 0:
                    self._child(self.stage_latency, stage).observe(ms / 1000)
        self._child(self.parts, camera, record.recipe_id, _RESULT.get(verdict.result_code, "other")).inc()
        if verdict.result_code is ResultCode.REJECT:
            self._child(self.rejects, record.recipe_id, str(verdict.reject_mask)).inc()
        if verdict.reason:
            self._child(self.fail_safes, verdict.reason).inc()
            if verdict.reason == "timeout":
                self._child(self.deadline_misses, camera).inc()
        for delivery in outcome.deliveries:
            if not delivery.delivered:
                self._child(self.undelivered, delivery.sink).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SnapshotCollector(Collector):
    def __init__(self, station: Station, live: Any) -> None:
        self.station = station
        self.live = live

    def collect(self) -> Iterator[Any]:
        st = self.station
        link = GaugeMetricFamily("linecheck_link_state", "1 for the current state of each link", labels=["kind", "link", "state"])
        frames = CounterMetricFamily("linecheck_camera_frames", "frames received", labels=["camera"])
        cam_drop = CounterMetricFamily("linecheck_camera_dropped", "frames the camera/driver dropped", labels=["camera"])
        incomplete = CounterMetricFamily("linecheck_camera_incomplete", "incomplete frames", labels=["camera"])
        queue_drop = CounterMetricFamily("linecheck_queue_dropped", "frames dropped by the station queue (overflow)", labels=["camera"])
        for lane in st.lanes:
            state = lane.source.state
            for s in CameraState:
                link.add_metric(["camera", lane.camera_id, s.value], 1.0 if s is state else 0.0)
            c = lane.source.counters
            frames.add_metric([lane.camera_id], c.frames)
            cam_drop.add_metric([lane.camera_id], c.dropped)
            incomplete.add_metric([lane.camera_id], c.incomplete)
            queue_drop.add_metric([lane.camera_id], lane.queue.dropped)
        for sink in st.sinks:
            try:
                current = sink.link_state
            except Exception:
                current = LinkState.FAILED
            for ls in LinkState:
                link.add_metric(["sink", sink.name, ls.value], 1.0 if ls is current else 0.0)
        yield from (link, frames, cam_drop, incomplete, queue_drop)
        log_drop = CounterMetricFamily("linecheck_log_dropped", "result log queue overflows (rows kept in the journal)")
        log_drop.add_metric([], st.result_log.dropped)
        written = CounterMetricFamily("linecheck_log_written", "rows written to the result log")
        written.add_metric([], st.result_log.written)
        pending = GaugeMetricFamily("linecheck_log_pending", "records waiting for the log writer")
        pending.add_metric([], st.result_log.pending())
        status = GaugeMetricFamily("linecheck_status_bits", "station status register (docs/plc.md register map)")
        status.add_metric([], float(int(st.status_bits())))
        active = GaugeMetricFamily("linecheck_active_recipe", "1 for the active recipe", labels=["recipe"])
        if st.book.active is not None:
            active.add_metric([st.book.active.recipe.id], 1.0)
        by_kind = {a.kind: a for a in st.alarm_set.snapshot()}
        alarms = GaugeMetricFamily("linecheck_alarms", "station alarms currently active")
        alarms.add_metric([], len(by_kind))
        alarm_active = GaugeMetricFamily("linecheck_alarm_active", "1 while the station alarm of this kind is active", labels=["kind"])
        alarm_count = GaugeMetricFamily("linecheck_alarm_occurrences", "occurrences of an active alarm since the operator cleared it",
                                        labels=["kind"])  # fmt: skip
        for kind in AlarmKind:
            alarm_active.add_metric([kind.value], 1.0 if kind in by_kind else 0.0)
            alarm_count.add_metric([kind.value], float(by_kind[kind].count) if kind in by_kind else 0.0)
        yield from (log_drop, written, pending, status, active, alarms, alarm_active, alarm_count)
        if self.live is not None:
            hot = GaugeMetricFamily("linecheck_live_tap_hot_path_us", "live view cost on the hot path", labels=["quantile"])
            for key, value in self.live.hot_path_us.percentiles().items():
                if key != "n" and value == value:  # skip NaN
                    hot.add_metric([key], value)
            skipped = CounterMetricFamily("linecheck_live_skipped", "live pictures skipped (encoder busy)")
            skipped.add_metric([], self.live.skipped_busy)
            yield from (hot, skipped)
