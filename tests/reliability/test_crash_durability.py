"""SIGKILL the service five times at random moments during a 50 parts/s run with the PLC
simulator connected: after each restart every verdict the PLC received is in the result log,
the database passes its integrity check, and the service resumes with the same recipe."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

from tests.reliability.station_env import linecheck, make_env
from tools.bench.plc_latency import start_simulator, stop_process


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sigkill_five_times_loses_no_delivered_verdict(tmp_path: Path) -> None:
    record = tmp_path / "plc.jsonl"
    sim, port = start_simulator("--record", str(record))
    rng = random.Random(11)
    try:
        config = make_env(tmp_path, plc_port=port, server_port=None)
        windows: list[tuple[int, int]] = []
        for attempt in range(5):
            before = len(_records(record))
            args = ["run", "-c", str(config)] + (["--recipe", "beta"] if attempt == 0 else [])
            start_ns = time.time_ns()
            proc = linecheck(*args)
            deadline = time.monotonic() + 60
            while len(_records(record)) < before + 20 and time.monotonic() < deadline:  # delivering
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
            windows.append((start_ns, time.time_ns()))
        # one more clean start recovers the last journal and must come up with the same recipe
        proc = linecheck("run", "-c", str(config), "--duration", "1", "--json")
        out, _ = proc.communicate(timeout=60)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["active_recipe"] == "beta"
    finally:
        stop_process(sim)

    db = tmp_path / "state" / "results.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT part_id, plc_seq, result_code, recipe_id, t_verdict_ns FROM results").fetchall()
    received = [r for r in _records(record) if "seq" in r]
    assert len(received) >= 100
    for start_ns, end_ns in windows:
        got = [r for r in received if start_ns <= r["t_ns"] <= end_ns + 10**9]
        logged = [r for r in rows if start_ns <= r[4] <= end_ns]
        by_part = Counter((r[0], r[2]) for r in logged)
        with_seq = Counter((r[0], r[1]) for r in logged)
        for r in got:
            key = (r["part_id"], r["seq"])
            if with_seq[key]:
                with_seq[key] -= 1
                continue
            # killed between the PLC write and the journal's delivery line: logged without a seq
            assert by_part[(r["part_id"], r["result_code"])] > 0, f"verdict lost: {r}"
        assert all(r[3] == "beta" for r in logged)
