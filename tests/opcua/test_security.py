"""Refusals: anonymous on the production config, a wrong password, an untrusted client
certificate, no security at all; the demo profile's anonymous reader; the sink's drop count."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asyncua import Client, ua

from line.mes.process import OpcUaPublisherSink
from line.mes.wiring import start_mes_server
from line.results.history import ns_to_datetime
from tests.opcua.conftest import Station
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import RecipeCalls, make_config, secure_client


async def _connect(client: Client) -> str:
    try:
        async with client:
            idx = await client.get_namespace_index("urn:linecheck")
            await client.nodes.objects.get_child([f"{idx}:Stations"])
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__
    except Exception as exc:  # transport-level refusals surface as other errors
        return f"refused: {type(exc).__name__}"
    return "connected"


def test_trusted_operator_connects(station: Station) -> None:
    async def main() -> str:
        return await _connect(await secure_client(station.config, station.cert, station.key, "op"))

    assert asyncio.run(main()) == "connected"


def test_anonymous_refused_on_production(station: Station) -> None:
    async def main() -> str:
        return await _connect(await secure_client(station.config, station.cert, station.key, None))

    assert asyncio.run(main()) == "BadIdentityTokenRejected"


def test_wrong_password_refused(station: Station) -> None:
    async def main() -> str:
        return await _connect(await secure_client(station.config, station.cert, station.key, "op", "guess"))

    assert asyncio.run(main()) == "BadUserAccessDenied"


def test_unknown_user_refused(station: Station) -> None:
    async def main() -> str:
        client = await secure_client(station.config, station.cert, station.key, "mes")
        client.set_user("intruder")
        return await _connect(client)

    assert asyncio.run(main()) == "BadUserAccessDenied"


def test_untrusted_client_certificate_refused(station: Station) -> None:
    async def main() -> str:
        client = await secure_client(station.config, station.untrusted_cert, station.untrusted_key, "op")
        return await _connect(client)

    assert asyncio.run(main()) == "BadCertificateUntrusted"
    assert list(station.config.rejected_dir.glob("*.der"))  # kept for an admin to review


def test_no_security_refused(station: Station) -> None:
    async def main() -> str:
        client = Client(station.config.endpoint, timeout=5)
        client.set_user("op")
        client.set_password("op-secret")
        return await _connect(client)

    result = asyncio.run(main())
    assert result != "connected", result


def test_demo_profile_anonymous_reader_on_loopback(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, profile="demo", allow_anonymous=True, security_policies=["None"])
    log = FakeLogWriter(tmp_path / "results.db")
    msg, defects = log.make()
    log.write(msg, defects)
    calls = RecipeCalls()
    sink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], calls)

    async def main() -> tuple[int, str]:
        async with Client(cfg.endpoint, timeout=5) as client:
            idx = await client.get_namespace_index("urn:linecheck")
            node = await client.nodes.objects.get_child([f"{idx}:Stations", f"{idx}:st1"])
            _, total = await node.call_method(
                f"{idx}:GetResults",
                ua.Variant(ns_to_datetime(msg.timestamp_ns - 10**9), ua.VariantType.DateTime),
                ua.Variant(ns_to_datetime(msg.timestamp_ns + 10**9), ua.VariantType.DateTime),
                ua.Variant(0, ua.VariantType.UInt32),
                ua.Variant(10, ua.VariantType.UInt32),
            )
            try:
                await node.call_method(f"{idx}:SelectRecipe", "cap-a")
                refused = "accepted"
            except ua.UaStatusCodeError as exc:
                refused = type(exc).__name__
            return total, refused

    try:
        assert asyncio.run(main()) == (1, "BadUserAccessDenied")
        assert calls.calls == []
    finally:
        sink.close()
        log.close()


def test_full_queue_drops_are_counted_never_blocking(tmp_path: Path) -> None:
    """A sink whose server is not consuming: put_nowait fails fast and every drop is counted."""
    cfg = make_config(tmp_path, queue_size=2)
    log = FakeLogWriter(tmp_path / "results.db")
    sink = OpcUaPublisherSink(cfg, lambda: None, ["cap-a"], RecipeCalls())  # type: ignore[arg-type,return-value]
    try:
        results = [sink.publish(log.make()[0]) for _ in range(6)]
        sink.update_state(camera_link="connected")  # stays pending: state is coalesced, not lost
    finally:
        sink.close()
        log.close()
    assert [r.delivered for r in results] == [True, True, False, False, False, False]
    assert sink.counters()["dropped"] == 4
    assert results[-1].error == "mes queue full"


@pytest.mark.parametrize("field", ["bogus"])
def test_update_state_rejects_unknown_fields(tmp_path: Path, field: str) -> None:
    sink = OpcUaPublisherSink(make_config(tmp_path), lambda: None, [], RecipeCalls())  # type: ignore[arg-type,return-value]
    try:
        with pytest.raises(TypeError):
            sink.update_state(**{field: 1})
    finally:
        sink.close()
