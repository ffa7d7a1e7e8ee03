"""One MES server process for the asyncua tests of this package (start-up costs seconds on a
2-core machine): production profile, a result log with 5000 verdicts, a trusted and an
untrusted client certificate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from line.mes.config import OpcUaServerConfig
from line.mes.process import OpcUaPublisherSink
from line.mes.wiring import start_mes_server
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import STATION_RECIPES, RecipeCalls, make_client_cert, make_config, trust

ROWS = 5000


@dataclass
class Station:
    config: OpcUaServerConfig
    db: Path
    log: FakeLogWriter
    sink: OpcUaPublisherSink
    calls: RecipeCalls
    cert: Path
    key: Path
    untrusted_cert: Path
    untrusted_key: Path
    t_first: int
    t_last: int


@pytest.fixture(scope="package")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    tmp = tmp_path_factory.mktemp("opcua")
    cfg = make_config(tmp)
    db = tmp / "results.db"
    log = FakeLogWriter(db)
    t0 = time.time_ns() - 7 * 86_400 * 10**9  # a week of history
    step = 7 * 86_400 * 10**9 // (ROWS + 10)
    log.write_many([log.make(t0 + i * step) for i in range(ROWS)])
    cert, key = make_client_cert(tmp / "client", "client")
    bad_cert, bad_key = make_client_cert(tmp / "stranger", "stranger")
    trust(cfg, cert)
    calls = RecipeCalls()
    sink = start_mes_server(cfg, db, STATION_RECIPES, calls)
    try:
        yield Station(cfg, db, log, sink, calls, cert, key, bad_cert, bad_key, t0, t0 + (ROWS - 1) * step)
    finally:
        sink.close()
        log.close()
