"""The benchmark hook runs against the real server and reports counts (no timing asserts)."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.opcua.conftest import Station
from tests.opcua.helpers import PASSWORDS
from tools.bench.opcua_load import (
    LoadSpec,
    create_client_certificate,
    start_load_process,
    trust_client_certificate,
)


def test_load_hook_counts(station: Station, tmp_path: Path) -> None:
    cert, key = create_client_certificate(tmp_path / "load")
    trust_client_certificate(station.config.trusted_dir, cert)
    spec = LoadSpec(
        endpoint=station.config.endpoint,
        station_id=station.config.station_id,
        cert=cert,
        key=key,
        user="mes",
        password=PASSWORDS["mes"],
        subscribers=2,
        pollers=1,
        duration_s=3.0,
        page_size=200,
        lookback_s=86_400 * 8,
    )
    stop = threading.Event()
    published = [0]

    def publish() -> None:  # verdicts all through the load run, however long its start-up takes
        while not stop.wait(0.05):
            msg, defects = station.log.make()
            station.log.write(msg, defects)
            published[0] += station.sink.publish(msg).delivered

    publisher = threading.Thread(target=publish, name="test-publisher")
    publisher.start()
    try:
        counts = start_load_process(spec).result(timeout=90)
    finally:
        stop.set()
        publisher.join()
    assert counts["errors"] == []
    assert len(counts["events"]) == 2 and all(0 < n <= published[0] for n in counts["events"])
    assert counts["get_results_calls"] > 0 and counts["get_results_rows"] > 0
