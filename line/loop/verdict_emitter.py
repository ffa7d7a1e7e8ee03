"""Emitting a verdict: the journal (before the PLC write: crash-durable), the sinks (bounded,
a failing sink yields ``Delivery(delivered=False)``), the result log's writer, the counters and
the observers. One job: what happens to a part once it is decided."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from line.loop.decision import Verdict
from line.loop.lane import PartTicket
from line.loop.stats import StationStats
from line.loop.verdict_records import build_message, build_record
from line.recipes.book import PreparedRecipe
from line.results.log import ResultLog, ResultRecord
from plc.vocabulary import Delivery, ResultCode, ResultSink, VerdictMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What observers (the demo's scorer, the HMI, tests, an embedding program) see of each
    decided part."""

    ticket: PartTicket
    record: ResultRecord
    verdict: Verdict
    deliveries: tuple[Delivery, ...]


Observer = Callable[[Outcome], None]


class VerdictEmitter:
    """Owns what a decided part becomes; ``sinks`` and ``observers`` are shared lists (the
    assembly adds sinks after the station is built, the HMI adds an observer when it starts)."""

    def __init__(self, sinks: list[ResultSink], result_log: ResultLog, stats: StationStats) -> None:
        self.sinks = sinks
        self.result_log = result_log
        self.stats = stats
        self.observers: list[Observer] = []
        self._lock = threading.Lock()
        # verdicts emitted since the station started: the operator's counters (``stats``) are
        # reset from the HMI or the PLC, this is what the stop summary and the exit status read
        self.verdicts_since_start = 0

    def emit(
        self, ticket: PartTicket, prepared: PreparedRecipe, verdict: Verdict, timings: dict[str, float],
        ng_view: np.ndarray | None,
    ) -> bool:
        """False: the part was already decided (by the watchdog or the real verdict)."""
        if not ticket.claim():
            return False
        now = time.perf_counter()
        processing_us = int((now - ticket.t_ready) * 1e6)
        if "engine" in timings:  # what the station adds around its network, part by part: free
            # of the network's own run-to-run spread, which on a shared CPU is larger than this
            timings["beyond_engine"] = processing_us / 1000 - timings["engine"]
        recipe = prepared.recipe
        record = build_record(ticket, recipe, verdict, processing_us)
        archive = self.result_log.archive
        image_ref = f"{record.result_id}.{archive.fmt}" if ng_view is not None and archive else ""
        message = build_message(ticket, recipe, verdict, record, now, image_ref)
        self.result_log.journal_append(record)  # before the PLC write: crash-durable
        with self._lock:
            deliveries = tuple(self._publish(sink, message) for sink in self.sinks)
            self.verdicts_since_start += 1
        t_ack = time.perf_counter()
        if "deadline" not in ticket.stamps:  # the real verdict's write, not the watchdog's
            ticket.stamps["acked"] = t_ack
        plc = next((d for d in deliveries if d.seq is not None), None)
        record.delivered = int(all(d.delivered for d in deliveries)) if deliveries else None
        record.plc_seq = plc.seq if plc else None
        if deliveries:
            self.result_log.journal_delivery(record)
        timings["plc_write"] = (t_ack - now) * 1000
        record.timings_json = json.dumps({k: round(v, 3) for k, v in timings.items()})
        if ng_view is not None:
            record.image = ng_view.copy()
        self.result_log.submit(record)
        self._count(verdict, deliveries)
        self.stats.record(processing_us / 1000, (t_ack - ticket.t_ready) * 1000 if deliveries else None, timings)
        outcome = Outcome(ticket, record, verdict, deliveries)
        for observer in self.observers:
            try:
                observer(outcome)
            except Exception:  # an observer never kills the loop
                log.exception("observer failed")
        return True

    def _publish(self, sink: ResultSink, message: VerdictMessage) -> Delivery:
        try:
            return sink.publish(message)
        except Exception as exc:  # a sink is a side effect: it becomes an event, not a crash
            self.stats.count(f"sink_error.{sink.name}")
            return Delivery(False, sink.name, error=f"{type(exc).__name__}: {exc}")

    def _count(self, verdict: Verdict, deliveries: tuple[Delivery, ...]) -> None:
        self.stats.count("verdicts")
        code = verdict.result_code
        self.stats.count({ResultCode.PASS: "passed", ResultCode.REJECT: "rejected"}.get(code, "fail_safe"))
        if verdict.reason:
            self.stats.count(f"fail_safe.{verdict.reason}")
        for d in deliveries:
            if not d.delivered:
                self.stats.count(f"undelivered.{d.sink}")
