"""OPC 40100-1 (Machine Vision) face of the MES server through asyncua clients (SignAndEncrypt +
users) against the server process: browse to the VisionSystemType instance, the state machine
following the station, recipe and result methods with valid and invalid arguments and roles,
ResultReadyEvent on the Server object."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, Node, ua

from line.mes.mv_nodes import AUTOMATIC_STATES, MV_NAMESPACE, STRUCTURES, VISION_STATES
from line.mes.wiring import start_mes_server
from line.results.history import ns_to_datetime, record_dict
from plc.vocabulary import StatusBits
from tests.opcua.conftest import Station
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import RecipeCalls, make_config, secure_client, trust
from tests.opcua.test_server import Collector, log_rows, run

EVENT_TYPES = {"StateChangedEventType": 1018, "ErrorEventType": 1019, "ErrorResolvedEventType": 1020,
               "JobStartedEventType": 1013, "ReadyEventType": 1023, "VisionDiagnosticInfoEventType": 1037}  # fmt: skip
ERR_UNKNOWN_RECIPE, ERR_REFUSED, ERR_UNKNOWN_RESULT, ERR_RECIPE_ACTIVE = -1, -2, -5, -6


@asynccontextmanager
async def vision_system(st: Station, user: str = "mes") -> AsyncIterator[tuple[Client, Node, int]]:
    client = await secure_client(st.config, st.cert, st.key, user)
    async with client:
        await client.load_data_type_definitions()
        idx = await client.get_namespace_index("urn:linecheck")
        mv = await client.get_namespace_index(MV_NAMESPACE)
        assert mv == MV_IDX
        node = await client.nodes.objects.get_child([f"{idx}:VisionSystems", f"{idx}:{st.config.station_id}"])
        yield client, node, mv


async def call(node: Node, mv: int, path: list[str], *args: Any) -> Any:
    *parents, method = path
    owner = await node.get_child([f"{mv}:{p}" for p in parents]) if parents else node
    try:
        return await owner.call_method(f"{mv}:{method}", *args)
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__


async def states(node: Node, mv: int) -> tuple[str, Any, str, Any, int]:
    vsm = await node.get_child(f"{mv}:VisionStateMachine")
    auto = await vsm.get_child(f"{mv}:AutomaticModeStateMachine")
    v_cur, a_cur = await vsm.get_child("0:CurrentState"), await auto.get_child("0:CurrentState")
    system = await (await node.get_child(f"{mv}:SystemState")).read_value()
    return (
        (await v_cur.read_value()).Text,
        await (await v_cur.get_child("0:Id")).read_value(),
        (await a_cur.read_value()).Text or "",
        await (await a_cur.get_child("0:Id")).read_value(),
        system.State,
    )


async def wait_state(node: Node, mv: int, vision: str, automatic: str = "") -> tuple[str, Any, str, Any, int]:
    async with asyncio.timeout(20):
        while True:
            got = await states(node, mv)
            if got[0] == vision and got[2] == automatic:
                return got
            await asyncio.sleep(0.05)


MV_IDX = 3  # urn:linecheck is 2: the server registers it before importing the nodeset


def mv_structure(name: str) -> Any:
    """By DataType NodeId: asyncua binds the Id structures' Python names to their base type."""
    return ua.extension_objects_by_datatype[ua.NodeId(STRUCTURES[name], MV_IDX)]()


def ext_recipe(recipe: str) -> ua.Variant:
    rid = mv_structure("RecipeIdExternalDataType")
    rid.Id = recipe
    return ua.Variant(rid, ua.VariantType.ExtensionObject)


def int_recipe(recipe: str) -> ua.Variant:
    rid = mv_structure("RecipeIdInternalDataType")
    rid.Id = recipe
    return ua.Variant(rid, ua.VariantType.ExtensionObject)


def id_of(structure: str, value: str = "") -> ua.Variant:
    out = mv_structure(structure)
    out.Id = value
    return ua.Variant(out, ua.VariantType.ExtensionObject)


def cause() -> tuple[ua.Variant, ua.Variant]:
    return ua.Variant(0, ua.VariantType.Int32), ua.Variant("test", ua.VariantType.String)


def start_args(recipe: str) -> list[Any]:
    return [id_of("MeasIdDataType"), id_of("PartIdDataType"), ext_recipe(recipe), id_of("ProductIdDataType"),
            ua.Variant([], ua.VariantType.Variant)]  # fmt: skip


def filter_args(
    state: int = 0, part: str = "", recipe: str = "", job: str = "", max_results: int = 0, start: int = 0
) -> list[Any]:
    cfg = ua.Variant(mv_structure("ConfigurationIdDataType"), ua.VariantType.ExtensionObject)
    return [
        ua.Variant(state, ua.VariantType.Int32),
        id_of("MeasIdDataType"),
        id_of("PartIdDataType", part),
        ext_recipe(""),
        int_recipe(recipe),
        cfg,
        cfg,
        id_of("ProductIdDataType"),
        id_of("JobIdDataType", job),
        ua.Variant(max_results, ua.VariantType.UInt32),
        ua.Variant(start, ua.VariantType.UInt32),
        ua.Variant(0, ua.VariantType.Int32),
    ]


@pytest.fixture
def own_station(tmp_path: Path, station: Station) -> Iterator[Station]:
    """A server of its own: feeding the alarm set switches the shared server's link alarms off."""
    cfg = make_config(tmp_path)
    trust(cfg, station.cert)
    db = tmp_path / "results.db"
    log = FakeLogWriter(db)
    sink = start_mes_server(cfg, db, ["cap-a"], RecipeCalls())
    try:
        yield dataclasses.replace(station, config=cfg, db=db, log=log, sink=sink)
    finally:
        sink.close()
        log.close()


def test_vision_system_tree_and_state_machine_follow_the_station(own_station: Station) -> None:
    station = own_station

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with vision_system(station) as (client, node, mv):
            out["type"] = await node.read_type_definition()
            handler = Collector()
            sub = await client.create_subscription(20, handler)
            base = client.nodes.base_event_type
            await sub.subscribe_events(client.nodes.server, base, queuesize=1000)
            station.sink.set_status(StatusBits.READY | StatusBits.RUNNING, 3)
            out["running"] = await wait_state(node, mv, "Operational", "ContinuousExecution")
            station.sink.set_status(StatusBits.READY, 3)
            out["ready"] = await wait_state(node, mv, "Operational", "Ready")
            station.sink.update_state(
                status=int(StatusBits.READY | StatusBits.ERROR), alarms=(("camera_lost", "cam0 gone"),)
            )
            out["error"] = await wait_state(node, mv, "Error")
            station.sink.update_state(status=int(StatusBits.READY | StatusBits.RUNNING), alarms=())
            await wait_state(node, mv, "Operational", "ContinuousExecution")
            station.sink.set_status(StatusBits.NONE, 3)
            out["halted"] = await wait_state(node, mv, "Halted")
            names = {ua.NodeId(i, mv): t for t, i in EVENT_TYPES.items()}
            await handler.wait_for(
                lambda evs: sum(names.get(e.EventType) == "StateChangedEventType" for e in evs) >= 5
            )
            out["events"] = [names.get(e.EventType) for e in handler.events if e.EventType in names]
            # state methods: engineer role only, state checked, no remote stop in the station
            out["halt_reader"] = await call(node, mv, ["VisionStateMachine", "Halt"], *cause())
            async with vision_system(station, "op") as (_, op_node, _):
                out["reset_halted"] = await call(op_node, mv, ["VisionStateMachine", "Reset"], *cause())
                out["stop_halted"] = await call(
                    op_node, mv, ["VisionStateMachine", "AutomaticModeStateMachine", "Stop"], *cause()
                )
                out["halt_bad_args"] = await call(op_node, mv, ["VisionStateMachine", "Halt"], "x")
            station.sink.set_status(StatusBits.READY | StatusBits.RUNNING, 3)
            await wait_state(node, mv, "Operational", "ContinuousExecution")
            await sub.delete()
            out["mv"] = mv
        return out

    r = run(main)
    mv = r["mv"]
    assert r["type"] == ua.NodeId(1003, mv)  # VisionSystemType
    assert r["running"] == ("Operational", ua.NodeId(VISION_STATES["Operational"], mv), "ContinuousExecution",
                            ua.NodeId(AUTOMATIC_STATES["ContinuousExecution"], mv), 1)  # fmt: skip  # PRD
    assert r["ready"][2:] == ("Ready", ua.NodeId(AUTOMATIC_STATES["Ready"], mv), 2)  # SBY
    assert r["error"][:2] == ("Error", ua.NodeId(VISION_STATES["Error"], mv)) and r["error"][4] == 5  # UDT
    assert r["halted"][:3] == ("Halted", ua.NodeId(VISION_STATES["Halted"], mv), "") and r["halted"][4] == 4
    ev = r["events"]
    assert "JobStartedEventType" in ev and "ReadyEventType" in ev
    assert ev.index("ErrorEventType") < ev.index("ErrorResolvedEventType")
    assert ev.count("VisionDiagnosticInfoEventType") == 2  # camera_lost raised, cleared
    assert r["halt_reader"] == "BadUserAccessDenied"
    assert r["reset_halted"] == -4  # ERR_NOT_SUPPORTED: the station takes no remote reset
    assert r["stop_halted"] == "BadInvalidState"
    assert r["halt_bad_args"] == "BadInvalidArgument"


def test_recipe_management_and_start_continuous(station: Station) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        station.sink.set_status(StatusBits.READY | StatusBits.RUNNING, 3)
        async with vision_system(station, "op") as (_, node, mv):
            await wait_state(node, mv, "Operational", "ContinuousExecution")
            lst = await call(node, mv, ["RecipeManagement", "GetRecipeListFiltered"], ext_recipe(""), "",
                             ua.Variant(2, ua.VariantType.Int32), ua.Variant(0, ua.VariantType.UInt32),
                             ua.Variant(0, ua.VariantType.UInt32), ua.Variant(0, ua.VariantType.Int32))  # fmt: skip
            out["list"] = (lst[0], lst[1], [r.Id for r in lst[3]], lst[4])
            prep = await call(
                node, mv, ["RecipeManagement", "PrepareRecipe"], ext_recipe(""), int_recipe("cap-b")
            )
            out["prepare"] = (prep[0].Id, prep[1], prep[2])
            out["prepare_unknown"] = (
                await call(
                    node, mv, ["RecipeManagement", "PrepareRecipe"], ext_recipe(""), int_recipe("nope")
                )
            )[2]
            out["prepare_bad"] = await call(node, mv, ["RecipeManagement", "PrepareRecipe"], "x")
            auto = ["VisionStateMachine", "AutomaticModeStateMachine", "StartContinuous"]
            out["start_b"] = await call(node, mv, auto, *start_args("cap-b"))
            out["start_refused"] = await call(node, mv, auto, *start_args("bad-recipe"))
            out["start_unknown"] = await call(node, mv, auto, *start_args("cap-zz"))
            out["unprepare_active"] = (
                await call(
                    node, mv, ["RecipeManagement", "UnprepareRecipe"], ext_recipe(""), int_recipe("cap-b")
                )
            )[1]
            out["unprepare_a"] = (
                await call(
                    node, mv, ["RecipeManagement", "UnprepareRecipe"], ext_recipe(""), int_recipe("cap-a")
                )
            )[1]
            out["single"] = await call(
                node,
                mv,
                ["VisionStateMachine", "AutomaticModeStateMachine", "StartSingleJob"],
                *start_args(""),
            )
        async with vision_system(station, "mes") as (_, node, mv):
            out["reader"] = await call(node, mv, auto, *start_args("cap-a"))
        return out

    before = len(station.calls.calls)
    r = run(main)
    assert r["list"][0] is True and r["list"][3] == 0 and set(r["list"][2]) >= {"cap-a", "cap-b"}
    assert r["prepare"] == ("cap-b", True, 0)
    assert r["prepare_unknown"] == ERR_UNKNOWN_RECIPE
    assert r["prepare_bad"] == "BadInvalidArgument"
    assert (r["start_b"][0].Id, r["start_b"][1]) == (f"{station.config.station_id}/cap-b", 0)
    assert (r["start_refused"][0].Id, r["start_refused"][1]) == ("", ERR_REFUSED)
    assert (r["start_unknown"][0].Id, r["start_unknown"][1]) == ("", ERR_UNKNOWN_RECIPE)
    assert r["unprepare_active"] == ERR_RECIPE_ACTIVE  # the refused switch left cap-b active
    assert r["unprepare_a"] == 0
    assert r["single"] == "BadInvalidState"  # continuous execution running: no single jobs
    assert r["reader"] == "BadUserAccessDenied"
    # the station saw the valid switch and the refused one, audited as OPC UA by the engineer
    assert station.calls.calls[before:] == [("cap-b", "opcua", "op"), ("bad-recipe", "opcua", "op")]


def test_result_methods_answer_from_the_log(station: Station) -> None:
    rows = log_rows(station)
    probe = rows[1234]
    fail_safe = next(r for r in rows if r.result_code == 2)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with vision_system(station) as (_, node, mv):
            rm = ["ResultManagement"]
            got = await call(
                node,
                mv,
                [*rm, "GetResultById"],
                id_of("ResultIdDataType", probe.result_id),
                ua.Variant(0, ua.VariantType.Int32),
            )
            out["by_id"] = got
            out["fs"] = await call(
                node,
                mv,
                [*rm, "GetResultById"],
                id_of("ResultIdDataType", fail_safe.result_id),
                ua.Variant(0, ua.VariantType.Int32),
            )
            out["unknown"] = await call(
                node,
                mv,
                [*rm, "GetResultById"],
                id_of("ResultIdDataType", "no-such-id"),
                ua.Variant(0, ua.VariantType.Int32),
            )
            out["bad"] = await call(node, mv, [*rm, "GetResultById"], 42, ua.Variant(0, ua.VariantType.Int32))
            out["components"] = await call(
                node,
                mv,
                [*rm, "GetResultComponentsById"],
                id_of("ResultIdDataType", probe.result_id),
                ua.Variant(0, ua.VariantType.Int32),
            )
            out["by_part"] = await call(
                node, mv, [*rm, "GetResultListFiltered"], *filter_args(part=str(probe.part_id))
            )
            pages: list[str] = []
            while True:
                page = await call(
                    node,
                    mv,
                    [*rm, "GetResultListFiltered"],
                    *filter_args(state=4, max_results=70, start=len(pages)),
                )
                pages += [x.ResultId.Id for x in page[3] or []]
                if page[0]:
                    break
            out["failed"] = pages
            out["job"] = await call(node, mv, [*rm, "GetResultListFiltered"], *filter_args(job="other/cap-a"))
            out["bad_part"] = await call(node, mv, [*rm, "GetResultListFiltered"], *filter_args(part="abc"))
        return out

    r = run(main)
    handle, result, err = r["by_id"]
    assert err == 0 and result.ResultId.Id == probe.result_id and result.IsPartial is False
    assert result.PartId.Id == str(probe.part_id) and result.InternalRecipeId.Id == probe.recipe_id
    assert result.ResultState == (4 if probe.result_code == 2 else 1)
    assert json.loads(result.ResultContent[0].Value) == record_dict(probe, detail=True)
    assert (
        r["fs"][1].ResultState == 4
        and json.loads(r["fs"][1].ResultContent[0].Value)["verdict"] == "fail_safe_reject"
    )
    assert r["unknown"][2] == ERR_UNKNOWN_RESULT
    assert r["bad"] == "BadInvalidArgument"
    comp = r["components"]
    assert (
        comp[-1] == 0
        and comp[6].Id == str(probe.part_id)
        and comp[12].Id == f"{station.config.station_id}/{probe.recipe_id}"
    )
    assert [x.ResultId.Id for x in r["by_part"][3]] == [
        x.result_id for x in rows if x.part_id == probe.part_id
    ]
    assert r["failed"] == [x.result_id for x in rows if x.result_code == 2]
    assert r["job"][1] == 0
    assert r["bad_part"] == "BadInvalidArgument"


def test_a_result_announced_before_its_row_is_committed_can_be_fetched(own_station: Station) -> None:
    """The event goes out when the station decides; the log commits the row a batch later (or,
    with a full disk, after the journal replays). A client told of a result fetches it at once:
    from the announcement while the row is missing, from the log (with boxes) once it is there."""
    station = own_station

    async def main() -> tuple[Any, Any, Any, Any]:
        async with vision_system(station) as (client, node, mv):
            handler = Collector()
            sub = await client.create_subscription(20, handler)
            await sub.subscribe_events(client.nodes.server, ua.NodeId(1024, mv), queuesize=100)
            msg, defects = station.log.make()
            while msg.defect_count == 0 or int(msg.result_code) != 1:  # a reject with boxes
                msg, defects = station.log.make()
            assert station.sink.publish(msg).delivered  # announced; its row not written
            await handler.wait_for(lambda evs: len(evs) >= 1)
            rm = ["ResultManagement"]
            rid = id_of("ResultIdDataType", msg.result_id)
            timeout = ua.Variant(0, ua.VariantType.Int32)
            announced = await call(node, mv, [*rm, "GetResultById"], rid, timeout)
            components = await call(node, mv, [*rm, "GetResultComponentsById"], rid, timeout)
            station.log.write(msg, defects)
            logged = await call(node, mv, [*rm, "GetResultById"], rid, timeout)
            await sub.delete()
            return msg, announced, components, logged

    msg, announced, components, logged = run(main)
    assert announced[2] == 0 and components[-1] == 0
    early = json.loads(announced[1].ResultContent[0].Value)
    assert (early["result_id"], early["verdict"], early["defect_classes"]) == (msg.result_id, "reject", dict(msg.defects))
    assert "defects" not in early  # what the event carried: no boxes yet
    assert announced[1].ResultState == 1 and components[6].Id == str(msg.part_id)
    late = json.loads(logged[1].ResultContent[0].Value)
    assert logged[2] == 0 and late["result_id"] == msg.result_id
    assert len(late["defects"]) == msg.defect_count  # from the log, boxes included


def test_result_ready_event_on_the_server_object(station: Station) -> None:
    async def main() -> tuple[list[Any], list[Any], int]:
        async with vision_system(station) as (client, node, mv):
            handler = Collector()
            sub = await client.create_subscription(20, handler)
            await sub.subscribe_events(client.nodes.server, ua.NodeId(1024, mv), queuesize=1000)
            msgs = []
            for _ in range(20):
                msg, defects = station.log.make()
                station.log.write(msg, defects)
                assert station.sink.publish(msg).delivered
                msgs.append(msg)
            await handler.wait_for(lambda evs: len(evs) >= len(msgs))
            await asyncio.sleep(0.3)  # nothing beyond one event per part
            await sub.delete()
            return handler.events, msgs, mv

    events, msgs, mv = run(main)
    assert [e.ResultId.Id for e in events] == [m.result_id for m in msgs]
    for e, m in zip(events, msgs, strict=True):
        assert e.EventType == ua.NodeId(1024, mv) and e.IsPartial is False
        assert e.Time == e.CreationTime == ns_to_datetime(m.timestamp_ns)  # the verdict's time
        assert e.ResultState == (4 if int(m.result_code) == 2 else 1)
        assert (e.PartId.Id, e.InternalRecipeId.Id, e.JobId.Id) == (
            str(m.part_id), m.recipe_id, f"{station.config.station_id}/{m.recipe_id}",
        )  # fmt: skip
        assert e.ProcessingTimes.ProcessingDuration == m.processing_us / 1000
        content = json.loads(e.ResultContent[0].Value)
        assert (content["result_id"], content["reason"], content["defect_classes"]) == (
            m.result_id, m.reason, dict(m.defects),
        )  # fmt: skip
