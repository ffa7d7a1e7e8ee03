"""The plant side of the linecheck MQTT uplink, as a worked example (docs/mqtt-uplink.md):
subscribe to every station's part verdicts in the Unified Namespace, drop the at-least-once
duplicates by ``result_id``, check the per-station order, and report rates and the latency
from verdict to here.

    python tools/plant_subscriber.py --host broker.plant --port 8883 --cafile ca.pem \\
        --username plant --password-file plant.pw --topic 'acme/+/+/+/+/linecheck/#' --duration 60

A historian or a Kafka bridge does the same three things: subscribe with QoS 1 on a persistent
session, de-duplicate by ``result_id``, and keep per-station order by arrival (the uplink sends
each station's messages in order). Latency assumes the station and this host share an NTP clock.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class PlantSubscriber:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.duplicates = 0
        self.parts_by_station: dict[str, int] = {}
        self.last_time_by_station: dict[str, int] = {}
        self.out_of_order = 0  # by verdict time; the station's own order is its result log's
        self.out_of_order_max_ms = 0.0
        self.latencies_ms: list[float] = []
        self.other = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.subscribed = threading.Event()

    def on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now_ns = time.time_ns()
        if not message.topic.endswith("/linecheck/part"):
            with self.lock:
                self.other += 1
            return
        data: dict[str, Any] = json.loads(message.payload)
        with self.lock:
            if data["result_id"] in self.seen:
                self.duplicates += 1
                return
            self.seen.add(data["result_id"])
            station = data["station"]
            self.parts_by_station[station] = self.parts_by_station.get(station, 0) + 1
            behind_ms = (self.last_time_by_station.get(station, 0) - data["t_verdict_ns"]) / 1e6
            if behind_ms > 0:  # decided by two threads (a lane, the deadline watchdog) a moment apart
                self.out_of_order += 1
                self.out_of_order_max_ms = max(self.out_of_order_max_ms, behind_ms)
            self.last_time_by_station[station] = data["t_verdict_ns"]
            self.latencies_ms.append((now_ns - data["t_verdict_ns"]) / 1e6)
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now

    def report(self) -> dict[str, Any]:
        with self.lock:
            lat = sorted(self.latencies_ms)
            span = (self.last_at - self.first_at) if self.first_at and self.last_at else 0.0
            pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)) if lat else (lambda q: None)
            return {"parts": len(self.seen), "duplicates": self.duplicates, "other_messages": self.other,
                    "stations": dict(sorted(self.parts_by_station.items())), "out_of_order": self.out_of_order,
                    "out_of_order_max_ms": round(self.out_of_order_max_ms, 3),
                    "parts_per_s": round(len(self.seen) / span, 1) if span else None,
                    "latency_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": lat[-1] if lat else None,
                                   "mean": round(statistics.fmean(lat), 2) if lat else None}}  # fmt: skip


def connect(args: argparse.Namespace, sub: PlantSubscriber) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv5)
    if args.username:
        password = Path(args.password_file).read_text().strip() if args.password_file else None
        client.username_pw_set(args.username, password)
    if args.cafile:
        client.tls_set(ca_certs=args.cafile, cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: Any, properties: object) -> None:
        if reason.is_failure:
            print(f"broker refused the connection: {reason}", file=sys.stderr)
            return
        c.subscribe(args.topic, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: sub.subscribed.set()
    client.on_message = sub.on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600  # the broker keeps our messages while we are away
    client.connect_async(args.host, args.port, keepalive=15, clean_start=False, properties=props)
    client.loop_start()
    return client


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--cafile", default=None, help="CA of the broker's TLS certificate (TLS when given)")
    p.add_argument("--username", default=None)
    p.add_argument("--password-file", default=None)
    p.add_argument("--client-id", default="plant-subscriber")
    p.add_argument("--topic", default="+/+/+/+/+/linecheck/#", help="the stations' subtree of the namespace")
    p.add_argument("--duration", type=float, default=None, help="seconds to listen (default: until Ctrl-C)")
    p.add_argument("--quiet-s", type=float, default=None, help="also stop after this long without a new part")
    args = p.parse_args(argv)
    sub = PlantSubscriber()
    client = connect(args, sub)
    if not sub.subscribed.wait(30):
        print("not subscribed within 30 s", file=sys.stderr)
        client.loop_stop()
        return 2
    print("subscribed", flush=True)
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
            if args.quiet_s and sub.last_at and time.monotonic() - sub.last_at > args.quiet_s:
                break
    except KeyboardInterrupt:
        pass
    client.disconnect()
    client.loop_stop()
    print(json.dumps(sub.report()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
