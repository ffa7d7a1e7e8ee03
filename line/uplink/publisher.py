"""The station's uplink to the plant broker: never blocks the station, never loses a verdict.

Three hand-overs, one job each:

1. hot path -> bounded in-memory queue (``observe``: copies a few fields, ``put_nowait``; a
   full queue is counted and alarmed, the station never waits);
2. writer thread -> disk outbox (JSON encoding and the SQLite insert, batched);
3. sender thread -> broker, in outbox order, at most ``inflight`` unacknowledged; a row is
   removed only after its PUBACK. After every reconnect the sender starts again from the oldest
   unacknowledged row (paho may also resend its own copies): delivery is at least once, in
   order, and every part message carries its ``result_id`` for de-duplication.

The sender thread also publishes the retained station state, the counters every
``counters_interval_s`` and turns link and outbox readings into alarms (line/alarms.py).

In Sparkplug B mode (``uplink.sparkplug``, line/uplink/sparkplug/node.py) the same three
hand-overs carry DDATA instead of JSON; the will is the NDEATH with this connection's bdSeq,
every connection (and every rebirth the primary host asks for) starts with NBIRTH and DBIRTH and
then the outbox from its oldest row, and nothing leaves while the primary host is offline.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from line.loop.alarms import Alarm, AlarmKind, AlarmSet
from line.uplink.config import UplinkConfig
from line.uplink.link import Link, MqttLink
from line.uplink.outbox import DiskOutbox, OutgoingMessage
from line.uplink.payload import (
    PartFacts,
    Topics,
    alarm_payload,
    counters_payload,
    encode,
    part_payload,
    state_payload,
)
from line.uplink.sparkplug.node import SparkplugNode

log = logging.getLogger(__name__)

_QueueItem = tuple[str, Any]  # ("part", PartFacts) | ("alarm", dict) | ("stop", None)
Clock = Callable[[], float]


class Uplink:
    def __init__(
        self,
        config: UplinkConfig,
        station_id: str,
        outbox_path: Path,
        alarms: AlarmSet,
        counts: Callable[[], dict[str, int]],
        active_recipe: Callable[[], str | None],
        subscriptions: tuple[str, ...] = (),
        on_message: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.config = config
        self.station = config.topic.station or station_id
        self.topics = Topics.of(config.topic, station_id)
        self.alarms = alarms
        self._counts = counts
        self._active_recipe = active_recipe
        self.outbox = DiskOutbox(outbox_path, config.outbox_max_rows, config.outbox_policy)
        if self.outbox.recovered:
            log.warning("MQTT outbox: %d undelivered messages from an earlier run", self.outbox.recovered)
        self._queue: queue.Queue[_QueueItem] = queue.Queue(config.queue_size)
        self.queue_dropped = 0
        self.sent = 0
        self.acked = 0
        self.refused = 0
        self.last_refusal = ""
        self.status_bits: int | None = None
        self._inflight: dict[int, tuple[int, int]] = {}  # mid -> (outbox seq, acks noted before its publish)
        self._acks: list[tuple[int, int, str | None]] = []  # (index, mid, refusal) from paho's thread
        self._ack_count = 0
        self._ack_lock = threading.Lock()  # only around _acks/_ack_count: never held while calling paho
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.sparkplug = (SparkplugNode(config.sparkplug, self.station, outbox_path.parent / "sparkplug-bdseq")
                          if config.sparkplug is not None else None)  # fmt: skip
        self._on_message = on_message
        client_id = config.client_id or f"linecheck-{self.station}"
        subscriptions = (*subscriptions, *(self.sparkplug.subscriptions if self.sparkplug else ()))
        self.link = MqttLink(config, client_id, self._will, self._on_ack, subscriptions, self._message,
                             clean_start=self.sparkplug is not None)  # fmt: skip
        self._writer = threading.Thread(target=self._write_loop, name="mqtt-outbox-writer", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._started = False

    def _will(self) -> tuple[str, bytes, bool]:
        """Before each connect (paho's thread): the retained offline state, or Sparkplug's
        NDEATH with a new bdSeq (not retained, spec 3.0)."""
        if self.sparkplug is not None:
            return (*self.sparkplug.death(), False)
        return self.topics.state, encode(state_payload(self.station, "offline", time.time_ns())), True

    def _message(self, topic: str, payload: bytes) -> None:
        if self.sparkplug is not None and self.sparkplug.on_message(topic, payload):
            self._wake.set()
        elif self._on_message is not None:
            self._on_message(topic, payload)

    # --- hot path --------------------------------------------------------------------------
    def offer_part(self, facts: PartFacts) -> bool:
        """Hand one part over; False (counted, alarmed) when the in-memory queue is full."""
        try:
            self._queue.put_nowait(("part", facts))
            return True
        except queue.Full:
            self.queue_dropped += 1
            return False

    def queue_full(self) -> bool:
        return self._queue.full()

    def publish_direct(self, topic: str, payload: bytes) -> None:
        """QoS 1 outside the outbox (a command's answer: worthless once the asker gave up)."""
        self.link.publish(topic, payload, qos=1)

    def on_alarm(self, alarm: Alarm, active: bool) -> None:
        """AlarmSet listener: alarm transitions go through the outbox, in order with the parts."""
        data = alarm_payload(self.station, alarm.kind.value, alarm.title, alarm.message, active,
                             time.time_ns(), alarm.count)  # fmt: skip
        try:
            self._queue.put_nowait(("alarm", data))
        except queue.Full:
            self.queue_dropped += 1

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.link.start()
        self._writer.start()
        self._sender.start()

    def close(self, flush_s: float = 2.0) -> None:
        """Write what is queued to the outbox, give the broker ``flush_s`` to acknowledge what
        is in flight, publish the retained offline state and disconnect. Undelivered rows stay
        in the outbox for the next start."""
        if not self._started:
            self.outbox.close()
            return
        self._started = False
        self._queue.put(("stop", None))
        self._writer.join()
        deadline = time.monotonic() + flush_s
        while self.outbox.depth and self.link.state is Link.CONNECTED and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        self._sender.join()
        if self.link.state is Link.CONNECTED:
            if self.sparkplug is not None:  # a clean DISCONNECT drops the will: say it ourselves
                topic, payload, retain = (*self.sparkplug.death_now(), False)
            else:
                topic, payload, retain = self.topics.state, encode(self._state("offline")), True
            info = self.link.client.publish(topic, payload, qos=1, retain=retain)
            with contextlib.suppress(RuntimeError, ValueError):  # not acknowledged in time: the will says it
                info.wait_for_publish(timeout=1.0)
        self.link.close()
        self.outbox.close()

    # --- readings --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What the HMI, /metrics, the OPC UA server and the alarm model read."""
        return {
            "link": self.link.state.value,
            "last_error": self.link.last_error or self.last_refusal,
            "outbox_depth": self.outbox.depth,
            "oldest_age_s": round(self.outbox.oldest_age_s(), 3),
            "sent": self.sent,
            "acked": self.acked,
            "dropped": self.outbox.dropped + self.queue_dropped,
            "refused": self.refused,
            "connect_attempts": self.link.connect_attempts,
            "recovered": self.outbox.recovered,
            **({"primary_host_online": self.sparkplug.host_online, "births": self.sparkplug.births}
               if self.sparkplug is not None else {}),
        }

    def check_alarms(self) -> None:
        """Link down, outbox past its threshold, messages lost or refused: alarms that clear
        themselves when the condition is gone (lost messages stay alarmed until the operator
        clears them: they are events)."""
        link = self.link.state
        if link in (Link.DISCONNECTED, Link.REFUSED):
            self.alarms.raise_(AlarmKind.MQTT_LINK_LOST, f"plant broker {self.config.host}:{self.config.port} "
                               f"{link.value}: {self.link.last_error}", repeat=False)  # fmt: skip
        elif self.alarms.is_active(AlarmKind.MQTT_LINK_LOST) and link is Link.CONNECTED:
            self.alarms.clear(AlarmKind.MQTT_LINK_LOST)
        depth, lost = self.outbox.depth, self.outbox.dropped + self.queue_dropped
        if depth > self.config.outbox_alarm_rows or lost or self.refused:
            parts = [f"{depth} messages waiting (limit {self.config.outbox_alarm_rows})"]
            if lost:
                parts.append(f"{lost} dropped ({self.config.outbox_policy})")
            if self.refused:
                parts.append(f"{self.refused} refused by the broker ({self.last_refusal})")
            self.alarms.raise_(AlarmKind.MQTT_OUTBOX, ", ".join(parts), repeat=False)
        elif self.alarms.is_active(AlarmKind.MQTT_OUTBOX):
            self.alarms.clear(AlarmKind.MQTT_OUTBOX)

    # --- writer thread ---------------------------------------------------------------------
    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < 512:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch: list[OutgoingMessage] = []
            for kind, data in items:
                if kind == "stop":
                    stopping = True
                    continue
                try:
                    batch.append(self._encode(kind, data))
                except (TypeError, ValueError):
                    log.exception("MQTT: a %s message could not be encoded", kind)
                    self.queue_dropped += 1
            try:
                dropped = self.outbox.add(batch)
            except Exception:
                log.exception("MQTT outbox: %d messages not stored", len(batch))
                self.queue_dropped += len(batch)
                continue
            if dropped:
                log.warning("MQTT outbox full: %d messages dropped (%s)", dropped, self.config.outbox_policy)
            self._wake.set()

    def _encode(self, kind: str, data: Any) -> OutgoingMessage:
        if self.sparkplug is not None:
            node = self.sparkplug
            if kind == "part":
                return OutgoingMessage(node.data_topic, node.part_data(data))
            return OutgoingMessage(node.data_topic, node.alarm_data(data, time.time_ns()))
        if kind == "part":
            return OutgoingMessage(self.topics.part, encode(part_payload(self.station, data)))
        return OutgoingMessage(self.topics.alarm, encode(data))

    # --- sender thread ---------------------------------------------------------------------
    def _on_ack(self, mid: int, refusal: str | None) -> None:
        """From paho's network thread, which holds its own message lock here: note it and
        return (never call into paho or wait for the sender from here)."""
        with self._ack_lock:
            self._ack_count += 1
            self._acks.append((self._ack_count, mid, refusal))
        self._wake.set()

    def _take_acks(self) -> None:
        """Match acknowledgements to outbox rows and remove those rows. An ack noted before a
        row's publish started belongs to an earlier message with the same (reused) id."""
        with self._ack_lock:
            acks, self._acks = self._acks, []
        done = []
        for index, mid, refusal in acks:
            entry = self._inflight.get(mid)
            if entry is None or index <= entry[1]:
                continue  # a state or counters message, or a copy paho re-sent from an earlier connection
            del self._inflight[mid]
            done.append(entry[0])
            if refusal is not None:
                self.refused += 1
                self.last_refusal = f"{refusal} on {self.topics.root}"
            else:
                self.acked += 1
        try:
            self.outbox.remove(done)
        except Exception:
            log.exception("MQTT outbox: acknowledged rows not removed")

    def _state(self, state: str) -> dict[str, Any]:
        return state_payload(self.station, state, time.time_ns(), self._active_recipe(), self.status_bits)

    def _send_loop(self) -> None:
        generation = -1
        last_seq = 0
        shown_state: tuple[str | None, int | None] | None = None
        next_counters = next_check = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            self._take_acks()
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1.0
                self.check_alarms()
            if self.link.state is not Link.CONNECTED:
                continue
            if self.link.generation != generation:  # (re)connected: start again from the oldest row
                generation = self.link.generation
                self._inflight.clear()
                last_seq, shown_state = 0, None
                if self.sparkplug is not None:
                    self.sparkplug.rebirth.set()
            if self.sparkplug is not None:
                node = self.sparkplug
                if not node.host_online:
                    continue  # held: the outbox keeps growing until the primary host is back
                if node.rebirth.is_set():  # connected, host back online, or NCMD Rebirth
                    for topic, payload in node.birth(self._counts()):
                        self.link.publish(topic, payload, qos=0)
                    self._inflight.clear()  # DDATA of the old birth: sent again, after the new one
                    last_seq = 0
                if now >= next_counters:
                    next_counters = now + self.config.counters_interval_s
                    self.link.publish(node.data_topic, node.stamp(node.counters_data(self._counts())), qos=0)
            else:
                current = (self._active_recipe(), self.status_bits)
                if current != shown_state:
                    shown_state = current
                    self.link.publish(self.topics.state, encode(self._state("online")), qos=1, retain=True)
                if now >= next_counters:
                    next_counters = now + self.config.counters_interval_s
                    data = counters_payload(self.station, time.time_ns(), dict(self._counts()), self._uplink_counts())
                    self.link.publish(self.topics.counters, encode(data), qos=0)
            room = self.config.inflight - len(self._inflight)
            if room <= 0:
                continue
            for row in self.outbox.after(last_seq, room):
                with self._ack_lock:
                    started = self._ack_count
                if self.sparkplug is not None:
                    mid = self.link.publish(row.topic, self.sparkplug.stamp(row.payload), qos=self.sparkplug.config.data_qos)
                else:
                    mid = self.link.publish(row.topic, row.payload, qos=1, retain=row.retain)
                if mid is None:
                    break
                self._inflight[mid] = (row.seq, started)
                last_seq = row.seq
                self.sent += 1

    def _uplink_counts(self) -> dict[str, Any]:
        snap = self.snapshot()
        return {k: snap[k] for k in ("link", "outbox_depth", "oldest_age_s", "sent", "dropped", "refused")}
