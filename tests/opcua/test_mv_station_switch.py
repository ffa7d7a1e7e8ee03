"""OPC 40100 StartContinuous with a recipe id switches a running station (scripted camera and
engines, real RecipeBook, result log and MES server process) like the HMI does; a recipe the
station refuses leaves the active one. Watched through ResultReadyEvents on the Server object."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from asyncua import ua

from inference.config import EngineOptions
from line.loop.station import Station
from line.mes.process import OpcUaPublisherSink
from line.mes.wiring import open_result_history
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.log import ResultLog
from tests.hmi.test_switching import RECIPE, MarkingEngine
from tests.line.fakes import ScriptedSource
from tests.opcua.conftest import Station as MesStation
from tests.opcua.helpers import make_config, trust
from tests.opcua.test_machine_vision import ERR_REFUSED, start_args, vision_system
from tests.opcua.test_server import Collector, run


def _station(tmp_path: Path, mes_station: MesStation) -> tuple[Station, Any]:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"fake")
    for code, rid in ((1, "a"), (2, "b"), (3, "broken")):
        (folder / f"{rid}.yaml").write_text(RECIPE.format(id=rid, code=code))

    def factory(recipe: Recipe) -> Any:
        if recipe.id == "broken":
            raise RuntimeError("engine does not build")
        engine = MarkingEngine(recipe.detector_spec(), EngineOptions())
        engine.code = recipe.code
        return engine

    book = RecipeBook(folder, factory, warm_max=2, check_models=False)
    assert book.switch("a", "startup").ok
    cfg = make_config(tmp_path)
    trust(cfg, mes_station.cert)
    db = tmp_path / "state" / "results.db"
    log = ResultLog(db, None)
    station: Station | None = None

    def select_recipe(
        recipe_id: str, source: str, user: str
    ) -> tuple[bool, str]:  # as line.app.assembly wires it
        assert station is not None
        result = station.request_switch(recipe_id, source, user)
        return result.ok, result.message

    mes = OpcUaPublisherSink(
        cfg, functools.partial(open_result_history, db), sorted(book.recipes), select_recipe
    )
    source = ScriptedSource("cam1", ScriptedSource.Options(rate_hz=50.0))
    station = Station("s1", book, [source], [mes], log, fetch_timeout_s=0.2, archive_ng=False)
    return station, cfg


def test_start_continuous_switches_the_running_station(tmp_path: Path, station: MesStation) -> None:
    line, cfg = _station(tmp_path, station)
    mes_view = MesStation(cfg, station.db, station.log, station.sink, station.calls, station.cert, station.key,
                          station.untrusted_cert, station.untrusted_key, 0, 0)  # fmt: skip

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with vision_system(mes_view, "op") as (client, node, mv):
            handler = Collector()
            sub = await client.create_subscription(20, handler)
            await sub.subscribe_events(client.nodes.server, ua.NodeId(1024, mv), queuesize=10000)
            auto = [f"{mv}:VisionStateMachine", f"{mv}:AutomaticModeStateMachine"]
            owner = await node.get_child(auto)

            def recipes() -> list[str]:
                return [e.InternalRecipeId.Id for e in handler.events]

            await handler.wait_for(lambda evs: len(evs) >= 10)
            out["switch"] = await owner.call_method(f"{mv}:StartContinuous", *start_args("b"))
            mark = len(handler.events)
            await handler.wait_for(lambda evs: recipes()[mark:].count("b") >= 20)
            try:
                out["refused"] = await owner.call_method(f"{mv}:StartContinuous", *start_args("broken"))
            except ua.UaStatusCodeError as exc:
                out["refused"] = type(exc).__name__
            after = len(handler.events)
            await handler.wait_for(lambda evs: len(evs) >= after + 20)
            out["recipes"] = recipes()
            out["after_refusal"] = recipes()[after:]
            out["ids"] = [e.ResultId.Id for e in handler.events]
            await sub.delete()
        return out

    line.start()
    try:
        r = run(main)
        active = line.book.active.recipe.id if line.book.active else None
    finally:
        line.stop()
    job, err = r["switch"]
    assert (job.Id, err) == (f"{cfg.station_id}/b", 0)
    assert r["refused"][1] == ERR_REFUSED
    assert active == "b"
    seq = r["recipes"]
    first_b = seq.index("b")
    assert set(seq[:first_b]) == {"a"} and set(seq[first_b:]) == {"b"}  # one switch, no part of mixed recipe
    assert r["after_refusal"] and set(r["after_refusal"]) == {"b"}
    assert len(r["ids"]) == len(set(r["ids"]))  # one event per part
