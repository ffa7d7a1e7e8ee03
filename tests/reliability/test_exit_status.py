"""``linecheck run`` exits 0 when every part seen since the station started got a verdict, even
after the operator reset the counters (the PLC's command 1, the HMI's reset): the exit status
and the stop summary count from the station's own start, not from the resettable counters."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.reliability.station_env import linecheck, make_env

pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_counter_reset_by_the_plc_does_not_fail_the_exit_status(tmp_path: Path) -> None:
    from pymodbus.client import ModbusTcpClient

    config = make_env(tmp_path)
    port = _free_port()
    proc = linecheck("run", "-c", str(config), "--port", str(port), "--duration", "6", "--json")
    plc = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    try:
        deadline = time.monotonic() + 60
        while not plc.connect():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        while plc.read_holding_registers(3, count=1).registers[0] < 30:  # result_seq: verdicts are flowing
            assert time.monotonic() < deadline
            time.sleep(0.05)
        plc.write_register(103, 1)  # command 1: reset the counters
        while plc.read_holding_registers(103, count=1).registers[0] != 0:  # consumed once accepted
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        plc.close()
    out, _ = proc.communicate(timeout=120)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["verdicts"] < summary["parts"], "the counters were not reset"  # the operator's view
    assert proc.returncode == 0, out[-3000:]
    assert "not every part" not in out
