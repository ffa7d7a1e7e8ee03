"""The uplink's face on the MES server: with the plant broker down (nothing listens on its
port), an OPC UA client (asyncua) reads the station's ``UplinkLinkState`` as not connected,
``UplinkOutboxDepth`` growing with the parts the station decides, and ``UplinkOldestAgeS``
above zero: the same figures the HMI and ``/metrics`` show."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.faults import running_station, verdicts, wait_for
from tests.reliability.station_env import make_env
from tests.uplink.broker import free_port

pytestmark = pytest.mark.timeout(180)

NAMES = ("UplinkLinkState", "UplinkOutboxDepth", "UplinkOldestAgeS")


async def _read(endpoint: str) -> dict[str, object]:
    from asyncua import Client

    async with Client(endpoint, timeout=10) as client:
        idx = await client.get_namespace_index("urn:linecheck")
        station = await client.nodes.objects.get_child([f"{idx}:Stations", f"{idx}:test-1"])
        return {n: await (await station.get_child(f"{idx}:{n}")).read_value() for n in NAMES}


def test_opcua_shows_the_uplink_link_outbox_depth_and_oldest_age_while_the_broker_is_down(tmp_path: Path) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/linecheck/"
    down = free_port()  # bound once and released: nothing listens there
    config = make_env(tmp_path, server_port=None, rate_hz=20, extra={
        "uplink": {"host": "127.0.0.1", "port": down, "reconnect_min_s": 0.5, "reconnect_max_s": 2},
        "opcua_server": {"endpoint": endpoint, "profile": "demo", "allow_anonymous": True,
                         "security_policies": ["None"], "state_dir": str(tmp_path / "opcua")},
    })  # fmt: skip
    with running_station(config) as station:
        wait_for(lambda: verdicts(station) >= 20, 60, "20 verdicts")
        seen: dict[str, object] = {}

        def readable() -> bool:
            seen.update(asyncio.run(_read(endpoint)))
            return int(seen["UplinkOutboxDepth"]) >= 20  # type: ignore[call-overload]

        wait_for(readable, 60, "the outbox depth over OPC UA", interval_s=0.5)
        assert seen["UplinkLinkState"] in ("reconnecting", "connecting")
        assert float(seen["UplinkOldestAgeS"]) > 0  # type: ignore[arg-type]
        first = int(seen["UplinkOutboxDepth"])  # type: ignore[call-overload]
        wait_for(lambda: verdicts(station) >= first + 20, 60, "20 more verdicts")
        wait_for(lambda: int(asyncio.run(_read(endpoint))["UplinkOutboxDepth"]) > first, 60,  # type: ignore[call-overload]
                 "the depth growing over OPC UA", interval_s=0.5)  # fmt: skip
        assert station.sinks and any(s.name == "mqtt_uplink" for s in station.sinks)
