"""One alarm, every face: a running station whose engine fails on a quarter of the parts (each
such part is decided fail-safe) raises the fail-safe-rate alarm once, in its alarm set, and the
same alarm is seen by

* the HMI's JSON (``/api/status``: kind, time and count),
* Prometheus ``/metrics`` (``linecheck_alarm_active{kind="fail_safe_rate"} 1``),
* an OPC UA client (asyncua) reading the MES server's ``ActiveAlarms`` variable,
* ``mbpoll`` (Debian's Modbus master) reading the status register: ALARM and FAIL_SAFE bits.

A Modbus server nobody polls reads "waiting for PLC" and does not make the station degraded;
while the station is still starting, ``/healthz`` says "starting" (503, not ready yet), not "failed".
"""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from line.app.config import HmiSection
from line.hmi.server import start_hmi
from line.loop.alarms import AlarmKind
from line.loop.station import Station
from line.mes.process import OpcUaPublisherSink
from line.mes.wiring import open_result_history
from line.recipes.book import RecipeBook
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from plc.config import ModbusServerConfig
from plc.modbus_server import ModbusServerSink
from plc.vocabulary import StatusBits
from tests.hmi.helpers import PASSWORDS, engine_factory, users_config
from tests.line.fakes import ScriptedSource, write_recipes
from tests.opcua.helpers import RecipeCalls, make_config

MBPOLL = shutil.which("mbpoll")


def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Polls until true; the timeout only guards against a hang (not a speed claim)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not seen"
        time.sleep(0.1)


def mbpoll_status(port: int) -> int:
    assert MBPOLL is not None
    run = subprocess.run([MBPOLL, "-m", "tcp", "-a", "1", "-0", "-t", "4", "-o", "2", "-p", str(port), "-r", "1", "-c", "1", "-1",
                          "127.0.0.1"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = re.findall(r"^\[1\]:\s+(-?\d+)", run.stdout, re.M)
    assert found, run.stdout
    return int(found[0]) & 0xFFFF


async def opcua_station_value(endpoint: str, name: str) -> object:
    from asyncua import Client

    async with Client(endpoint, timeout=10) as client:
        idx = await client.get_namespace_index("urn:linecheck")
        node = await client.nodes.objects.get_child([f"{idx}:Stations", f"{idx}:st1", f"{idx}:{name}"])
        return await node.read_value()


async def opcua_active_alarms(endpoint: str) -> list[str]:
    return list(await opcua_station_value(endpoint, "ActiveAlarms") or [])  # type: ignore[call-overload]


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt-get install -y mbpoll)")
def test_forced_fail_safes_show_the_same_alarm_on_every_face(tmp_path: Path) -> None:
    folder = write_recipes(tmp_path / "recipes", count=2)
    book = RecipeBook(folder, engine_factory(), warm_max=2, check_models=False)
    assert book.switch("r1", "startup").ok
    choking = tuple(range(4, 100_000, 4))  # every fourth part: the engine raises, the part is fail-safe
    source = ScriptedSource("cam1", ScriptedSource.Options(rate_hz=50.0, choking_parts=choking))
    log = ResultLog(tmp_path / "state" / "results.db", ImageArchive(tmp_path / "state" / "ng", 50))
    station = Station("st1", book, [source], [], log, fetch_timeout_s=0.2)
    modbus = ModbusServerSink(ModbusServerConfig(port=0, heartbeat_ms=250), requests=station)
    station.sinks.append(modbus)
    mes_config = make_config(
        tmp_path / "mes", profile="demo", allow_anonymous=True, security_policies=["None"]
    )
    history = functools.partial(open_result_history, log.db_path)
    station.sinks.append(
        OpcUaPublisherSink(mes_config, history, ["r1", "r2"], RecipeCalls())
    )  # started by the station
    hmi = None
    try:
        hmi = start_hmi(station, HmiSection(enabled=True, port=0, users=users_config()))  # before the start, as the CLI does
        with httpx.Client(base_url=hmi.url, auth=("viewer", PASSWORDS["viewer"]), timeout=30) as http:
            starting = http.get("/healthz")
            assert (starting.status_code, starting.json()["status"]) == (503, "starting")  # not "failed" while it starts
            station.start()
            # before any PLC has polled: waiting, not an error, and no degraded badge for it
            links = {link["name"]: link for link in http.get("/api/status").json()["links"]}
            assert (links["modbus_server"]["state"], links["modbus_server"]["status"]) == (
                "waiting for PLC",
                "waiting",
            )
            assert not any("modbus_server" in r for r in http.get("/healthz").json()["reasons"])

            wait_for(
                lambda: station.alarm_set.is_active(AlarmKind.FAIL_SAFE_RATE),
                what="fail-safe rate alarm raised",
            )
            alarm = next(a for a in station.alarm_set.snapshot() if a.kind is AlarmKind.FAIL_SAFE_RATE)

            shown = {a["kind"]: a for a in http.get("/api/status").json()["alarms"]}
            assert shown["fail_safe_rate"]["title"] == "Many fail-safe rejects"
            assert (
                shown["fail_safe_rate"]["count"] == 1
                and "parts fail-safe" in shown["fail_safe_rate"]["message"]
            )
            assert shown["fail_safe_rate"]["first_seen"].startswith(
                time.strftime("%Y-%m-%dT", time.localtime(alarm.first_seen))
            )
            health = http.get("/healthz").json()
            assert health["status"] == "degraded" and any(
                r.startswith("Many fail-safe rejects") for r in health["reasons"]
            )

            metrics = http.get("/metrics").text
            assert re.search(r'^linecheck_alarm_active\{kind="fail_safe_rate"\} 1\.0$', metrics, re.M), (
                metrics[-3000:]
            )
            assert re.search(r'^linecheck_alarm_active\{kind="storage_fault"\} 0\.0$', metrics, re.M)

        both = StatusBits.ALARM | StatusBits.FAIL_SAFE  # the inspection-error alarm alone sets ALARM first
        status = wait_for(
            lambda: (s := mbpoll_status(modbus.port)) & both == both and s, what="ALARM and FAIL_SAFE in Modbus"
        )
        assert status & StatusBits.RUNNING and not status & StatusBits.ERROR

        names = wait_for(
            lambda: asyncio.run(opcua_active_alarms(mes_config.endpoint)), what="OPC UA ActiveAlarms"
        )
        assert "fail_safe_rate" in names
        # which recipe is active and why, as the HMI says it
        reason = wait_for(lambda: asyncio.run(opcua_station_value(mes_config.endpoint, "ActiveRecipeReason")),
                          what="OPC UA ActiveRecipeReason")  # fmt: skip
        assert reason == station.book.active_reason and "startup" in str(reason)

        # the operator clears the alarms (Modbus command 2): the condition still holds, so the
        # monitor raises it again at its next look, as a new occurrence
        station.command(2, "test")
        wait_for(lambda: station.alarm_set.is_active(AlarmKind.FAIL_SAFE_RATE), what="alarm raised again")
    finally:
        if hmi is not None:
            hmi.close()
        station.stop()
