"""The MES server through asyncua clients (Basic256Sha256 SignAndEncrypt + users) against the
server process fed by ``OpcUaPublisherSink``: paging GetResults and HistoryRead over 5000
logged verdicts, live ResultReady events, state, alarms, SelectRecipe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asyncua import Node, ua

from line.results.history import ns_to_datetime, record_dict
from line.results.log import ResultRecord
from line.results.reader import ResultLogReader
from plc.vocabulary import StatusBits
from tests.opcua.conftest import ROWS, Station
from tests.opcua.helpers import STATION_RECIPES, secure_client

END = 2**62


@asynccontextmanager
async def station_node(st: Station, user: str = "mes") -> AsyncIterator[tuple[Any, Node, int]]:
    client = await secure_client(st.config, st.cert, st.key, user)
    async with client:
        idx = await client.get_namespace_index("urn:linecheck")
        node = await client.nodes.objects.get_child([f"{idx}:Stations", f"{idx}:{st.config.station_id}"])
        yield client, node, idx


def log_rows(st: Station) -> list[ResultRecord]:
    history = ResultLogReader(st.db)
    try:
        return history.query(0, END, 0, 10**6)
    finally:
        history.close()


def u32(v: int) -> ua.Variant:
    return ua.Variant(v, ua.VariantType.UInt32)


async def get_results(node: Node, idx: int, lo: int, hi: int, start: int, n: int) -> tuple[list[str], int]:
    out = await node.call_method(
        f"{idx}:GetResults", ns_to_datetime(lo), ns_to_datetime(hi), u32(start), u32(n)
    )
    return out[0] or [], out[1]


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())  # type: ignore[arg-type]


def test_endpoints_offer_only_basic256sha256_sign_and_encrypt(station: Station) -> None:
    async def main() -> list[ua.EndpointDescription]:
        async with station_node(station) as (client, _, _):
            return list(await client.get_endpoints())

    endpoints = run(main)
    assert {(e.SecurityPolicyUri.split("#")[1], e.SecurityMode) for e in endpoints} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)
    }
    assert {t.TokenType for e in endpoints for t in e.UserIdentityTokens} == {ua.UserTokenType.UserName}


def test_get_results_pages_through_5000(station: Station) -> None:
    rows = [r for r in log_rows(station) if r.t_verdict_ns <= station.t_last][:ROWS]

    async def main() -> dict[str, Any]:
        got: list[str] = []
        pages = 0
        async with station_node(station) as (_, node, idx):
            while True:
                page, total = await get_results(node, idx, station.t_first, station.t_last, len(got), 777)
                assert total == ROWS
                pages += 1
                got += page
                if len(got) >= total:
                    break
            capped, _ = await get_results(node, idx, station.t_first, station.t_last, 0, 0)
            huge, _ = await get_results(node, idx, station.t_first, station.t_last, 0, 100_000)
            beyond = await get_results(node, idx, station.t_first, station.t_last, ROWS + 5, 10)
            reversed_range = await get_results(node, idx, station.t_last, station.t_first, 0, 10)
        return {
            "got": got,
            "pages": pages,
            "capped": capped,
            "huge": huge,
            "beyond": beyond,
            "rev": reversed_range,
        }

    r = run(main)
    assert r["pages"] == 7
    assert [json.loads(s) for s in r["got"]] == [record_dict(x, detail=True) for x in rows]
    assert len(r["capped"]) == len(r["huge"]) == station.config.get_results_max
    assert r["beyond"] == ([], ROWS)
    assert r["rev"] == ([], 0)


def test_history_read_answers_from_the_log(station: Station) -> None:
    rows = [r for r in log_rows(station) if r.t_verdict_ns <= station.t_last][:ROWS]

    async def main() -> tuple[list[ua.DataValue], list[ua.DataValue]]:
        async with station_node(station) as (_, node, idx):
            last = await node.get_child(f"{idx}:LastResult")
            assert await last.read_attribute(ua.AttributeIds.Historizing)
            everything = await last.read_raw_history(  # follows 5 continuation points
                ns_to_datetime(station.t_first), ns_to_datetime(station.t_last)
            )
            mid = rows[2000].t_verdict_ns
            some = await last.read_raw_history(
                ns_to_datetime(mid), ns_to_datetime(station.t_last), numvalues=3
            )
        return everything, some

    everything, some = run(main)
    assert [json.loads(dv.Value.Value) for dv in everything] == [record_dict(x, detail=False) for x in rows]
    assert [dv.SourceTimestamp for dv in everything[:3]] == [ns_to_datetime(x.t_verdict_ns) for x in rows[:3]]
    assert [json.loads(dv.Value.Value)["result_id"] for dv in some] == [x.result_id for x in rows[2000:2003]]


class Collector:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.changed = asyncio.Event()

    def event_notification(self, event: Any) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, pred: Callable[[list[Any]], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred(self.events):
                self.changed.clear()
                await self.changed.wait()


def test_live_verdicts_events_last_result_and_counters(station: Station) -> None:
    n = 25
    msgs = []

    async def main() -> tuple[list[Any], dict[str, Any]]:
        async with station_node(station) as (client, node, idx):
            etype = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
            handler = Collector()
            sub = await client.create_subscription(20, handler)
            await sub.subscribe_events(node, etype, queuesize=1000)
            before = await (await node.get_child(f"{idx}:Inspected")).read_value()
            for _ in range(n):
                msg, defects = station.log.make()
                station.log.write(msg, defects)
                assert station.sink.publish(msg).delivered
                msgs.append(msg)
            await handler.wait_for(lambda evs: len(evs) >= n)
            station.sink.set_status(StatusBits.READY | StatusBits.RUNNING, 3)
            await asyncio.sleep(0.3)  # one state update through the queue
            values = {
                name: await (await node.get_child(f"{idx}:{name}")).read_value()
                for name in (
                    "Inspected",
                    "LastResult",
                    "State",
                    "ActiveRecipe",
                    "ActiveRecipeCode",
                    "StatusBits",
                )
            }
            values["before"] = before
            await sub.delete()
            return handler.events, values

    events, values = run(main)
    assert [e.ResultId for e in events] == [m.result_id for m in msgs]
    for e, m in zip(events, msgs, strict=True):
        assert (e.PartId, e.RecipeId, e.ResultCode, e.RejectMask, e.ProcessingUs) == (
            m.part_id, m.recipe_id, int(m.result_code), m.reject_mask, m.processing_us,
        )  # fmt: skip
        assert dict(zip(e.DefectClasses or [], e.DefectCounts or [], strict=True)) == dict(m.defects)
        assert e.VerdictTime == ns_to_datetime(m.timestamp_ns)
    assert values["Inspected"] - values["before"] == n
    last = json.loads(values["LastResult"])
    assert last["result_id"] == msgs[-1].result_id and last["defect_classes"] == dict(msgs[-1].defects)
    assert (values["State"], values["ActiveRecipe"], values["ActiveRecipeCode"]) == ("running", "cap-a", 3)
    assert values["StatusBits"] == int(StatusBits.READY | StatusBits.RUNNING)


def test_alarms_on_transitions(station: Station) -> None:
    async def main() -> list[tuple[str, bool]]:
        async with station_node(station) as (client, node, idx):
            etype = await client.nodes.base_event_type.get_child(f"{idx}:StationAlarmEventType")
            handler = Collector()
            sub = await client.create_subscription(20, handler)
            await sub.subscribe_events(node, etype)
            sink = station.sink
            sink.update_state(camera_link="connected", plc_link="connected", deadline_misses=0)
            sink.update_state(plc_link="reconnecting")
            sink.update_state(plc_link="reconnecting")  # no second event without a transition
            sink.update_state(plc_link="connected")
            for misses in (1, 2, 3, 4):  # threshold 2 in 60 s
                sink.update_state(deadline_misses=misses)
            sink.update_state(publish_dropped=3)  # as the sink reports its own drops
            await handler.wait_for(lambda evs: len(evs) >= 4)
            await asyncio.sleep(0.3)
            await sub.delete()
            return [(e.AlarmName, e.Active) for e in handler.events]

    assert run(main) == [
        ("plc_link_lost", True),
        ("plc_link_lost", False),
        ("deadline_misses", True),
        ("mes_queue_overflow", True),
    ]


def test_select_recipe_roles_and_replies(station: Station) -> None:
    async def call(user: str, recipe: str) -> Any:
        async with station_node(station, user) as (_, node, idx):
            try:
                return await node.call_method(f"{idx}:SelectRecipe", recipe)
            except ua.UaStatusCodeError as exc:
                return type(exc).__name__

    async def main() -> dict[str, Any]:
        out = {
            "ok": await call("op", "cap-b"),
            "unknown": await call("op", "cap-z"),
            "refused": await call("op", "bad-recipe"),
            "reader": await call("mes", "cap-b"),
        }
        station.sink.set_recipes(["cap-a", "cap-b", "cap-c"])
        async with station_node(station) as (_, node, idx):  # the server process has the new list
            recipes = await node.get_child(f"{idx}:Recipes")
            while (await recipes.read_value()) != ["cap-a", "cap-b", "cap-c"]:
                await asyncio.sleep(0.05)
            out["recipes"] = await recipes.read_value()
        out["new"] = await call("op", "cap-c")
        return out

    before = len(station.calls.calls)
    try:
        r = run(main)
    finally:  # the server is shared by the package's tests: their recipes again
        station.sink.set_recipes(STATION_RECIPES)
    assert r["ok"] == "switched to cap-b"
    assert r["unknown"] == "BadInvalidArgument"
    assert r["refused"] == "BadInvalidArgument"
    assert r["reader"] == "BadUserAccessDenied"
    assert r["new"] == "switched to cap-c"
    assert r["recipes"] == ["cap-a", "cap-b", "cap-c"]
    # unknown ids never reach the station; the reader's call neither
    assert station.calls.calls[before:] == [
        ("cap-b", "opcua", "op"),
        ("bad-recipe", "opcua", "op"),
        ("cap-c", "opcua", "op"),
    ]


@pytest.mark.parametrize("bad", [["x"], [1, 2, 3, 4]])
def test_get_results_bad_arguments(station: Station, bad: list[Any]) -> None:
    async def main() -> str:
        async with station_node(station) as (_, node, idx):
            try:
                await node.call_method(f"{idx}:GetResults", *bad)
            except ua.UaStatusCodeError as exc:
                return type(exc).__name__
        return "accepted"

    assert run(main) == "BadInvalidArgument"
