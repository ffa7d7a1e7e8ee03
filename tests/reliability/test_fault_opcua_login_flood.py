"""A password flood at the OPC UA MES endpoint (4 asyncua clients guessing the operator's
password) during a 50 parts/s demo run: every guess is refused, the station's fail-safe share
stays at the share of the same run without the flood, and another user with the right password
logs in from another address while the flood goes on. That the refused guesses cost no password
check is counted in tests/opcua/test_login_throttle.py."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from line.passwords import hash_password
from tests.opcua.helpers import FromOtherAddress
from tests.reliability.demo_run import demo_config, fail_safe_share, run_demo

pytestmark = pytest.mark.slow

MES_PASSWORD = "mes-reader-pw"


def add_reader(data: dict[str, Any]) -> None:
    data["opcua_server"]["users"]["mes"] = {"role": "reader", "password_hash": hash_password(MES_PASSWORD)}


async def login(endpoint: str, user: str, password: str) -> str:
    client = Client(endpoint, timeout=10)
    client.set_user(user)
    client.set_password(password)
    try:
        async with client:
            await client.nodes.objects.get_children()
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__
    return "connected"


def test_opcua_password_flood_does_not_move_the_fail_safe_share(tmp_path: Path) -> None:
    config = demo_config(tmp_path, add_reader)
    baseline = run_demo(config)

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    seen: dict[str, str] = {}

    def flood(listening: dict[str, Any], stop: threading.Event) -> None:
        endpoint = listening["opcua"]

        def guesser(i: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    outcome = asyncio.run(login(endpoint, "operator", f"guess-{i}-{n}"))
                except (OSError, asyncio.TimeoutError):
                    break  # the run ended
                with lock:
                    outcomes[outcome] += 1

        threads = [threading.Thread(target=guesser, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while sum(outcomes.values()) < 20 and not stop.wait(0.1):
            pass
        loop = FromOtherAddress()  # during the flood, from another host: another user
        try:
            seen["mes"] = loop.run_until_complete(login(endpoint, "mes", MES_PASSWORD))
        finally:
            loop.close()
        for t in threads:
            t.join()

    flooded = run_demo(config, flood)
    print(f"baseline {baseline['fail_safe']}/{baseline['parts']} fail-safe, flooded "
          f"{flooded['fail_safe']}/{flooded['parts']}; outcomes {dict(outcomes)}")  # fmt: skip
    assert sum(outcomes.values()) >= 20
    assert set(outcomes) == {"BadUserAccessDenied"}, outcomes
    assert seen["mes"] == "connected"
    assert fail_safe_share(flooded) <= fail_safe_share(baseline) + 0.05, (baseline, flooded)
