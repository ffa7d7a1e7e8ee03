"""OPC 40100-1 (OPC UA for Machine Vision) face of the MES server: one ``VisionSystemType``
object per station, Simple Inline Vision System Server profile, beside the ``urn:linecheck``
model of ``line.mes.server`` (which stays for existing clients).

What it does, and why it is shaped so:

- The state machines follow what the station reports (``StatusBits`` and its alarm set, see
  ``line.mes.mv_state``); a method only asks the station to act. So the address space never
  claims a state the line is not in.
- The method handlers live in one module per group, each with one job: the state machine
  (``line.mes.mv_state_methods``: Halt, Reset, Stop, Abort, StartContinuous through the
  station's remote halt), recipe management (``line.mes.mv_recipe_methods``) and result
  management (``line.mes.mv_result_methods``). They share the station's view through
  ``line.mes.mv_context.MvContext``, which this face keeps current.
- ``ResultReadyEvent`` is built from the verdict the station publishes.
- Every event is emitted on the VisionSystem object and delivered to subscribers of the
  Server object too: asyncua hands an event only to subscribers of its emitting node, while
  many MES clients subscribe on the Server object only.

Roles: result methods need a named user (the MES role: ``reader`` or above); state and recipe
methods need the engineer role (``operator``). Anonymous callers never call methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from asyncua import Node, Server, ua

from line.mes.config import OpcUaServerConfig
from line.mes.mv_context import ControlFn, MvContext, RecipeSwitchFn
from line.mes.mv_nodes import (
    AUTOMATIC_STATES,
    DIAGNOSTIC_INFO_EVENT_TYPE,
    ERROR_EVENT_TYPE,
    ERROR_RESOLVED_EVENT_TYPE,
    JOB_STARTED_EVENT_TYPE,
    READY_EVENT_TYPE,
    RESULT_READY_EVENT_TYPE,
    STATE_CHANGED_EVENT_TYPE,
    VISION_STATES,
    VisionSystemNodes,
    build_vision_system,
    numeric_node_id,
)
from line.mes.mv_recipe_methods import RecipeMethods
from line.mes.mv_result_methods import ResultMethods
from line.mes.mv_results import result_fields
from line.mes.mv_state import ERROR_ALARMS, PREOPERATIONAL, VisionState, vision_state
from line.mes.mv_state_methods import StateMethods
from line.results.history import ResultHistory

__all__ = ["MachineVisionFace"]

S = ua.VariantType


class MachineVisionFace:
    def __init__(
        self,
        config: OpcUaServerConfig,
        history: ResultHistory,
        recipes: Sequence[str],
        select_recipe: RecipeSwitchFn,
        control: ControlFn | None = None,
    ) -> None:
        self._station = config.station_id
        self._server: Server | None = None
        self.nodes: VisionSystemNodes | None = None
        self._gens: dict[int, Any] = {}
        self._status: int | None = None
        self._alarms: dict[str, str] = {}
        self._ctx = MvContext(config, self._new, list(recipes))
        recipe_methods = RecipeMethods(self._ctx, select_recipe)
        self._methods = (
            StateMethods(self._ctx, recipe_methods.switch, control),
            recipe_methods,
            ResultMethods(self._ctx, history),
        )

    # ---- address space -------------------------------------------------------------------

    async def build(self, server: Server, idx: int) -> None:
        """Before ``server.start()``: nodes, method callbacks, event generators, first state."""
        self._server = server
        self.nodes = nodes = await build_vision_system(server, idx, self._station)
        for event_type in (
            RESULT_READY_EVENT_TYPE,
            STATE_CHANGED_EVENT_TYPE,
            JOB_STARTED_EVENT_TYPE,
            READY_EVENT_TYPE,
            ERROR_EVENT_TYPE,
            ERROR_RESOLVED_EVENT_TYPE,
            DIAGNOSTIC_INFO_EVENT_TYPE,
        ):
            self._gens[event_type] = await server.get_event_generator(
                nodes.type_node(event_type), nodes.system.nodeid
            )
        for methods in self._methods:
            for name, handler in methods.handlers().items():
                server.link_method(nodes.methods[name], handler)
        await self._apply_state(PREOPERATIONAL, emit=False)

    async def _emit(
        self, event_type: int, message: str, severity: int = 100, time: datetime | None = None, **fields: Any
    ) -> None:
        """Fire on the VisionSystem object, then hand the same event to Server subscribers."""
        assert self.nodes is not None  # noqa: S101 - internal invariant
        gen = self._gens[event_type]
        ev = gen.event
        for name, value in fields.items():
            setattr(ev, name, value)
        ev.Severity = severity
        await gen.trigger(time_attr=time, message=message)
        ev.emitting_node = numeric_node_id(ua.ObjectIds.Server)
        try:
            await gen.isession.subscription_service.trigger_event(ev)
        finally:
            ev.emitting_node = self.nodes.system.nodeid

    def _new(self, structure: str) -> Any:
        assert self.nodes is not None  # noqa: S101 - internal invariant
        return self.nodes.new(structure)

    # ---- state ---------------------------------------------------------------------------

    async def _write(self, node: Node, variant: ua.Variant) -> None:
        assert self._server is not None  # noqa: S101
        await self._server.write_attribute_value(node.nodeid, ua.DataValue(variant))

    async def _write_current(self, current: Node, name: str | None, state_ids: dict[str, int]) -> None:
        assert self.nodes is not None  # noqa: S101
        await self._write(current, ua.Variant(ua.LocalizedText(name or ""), S.LocalizedText))
        state_id = self.nodes.type_node(state_ids[name]) if name else ua.NodeId()
        await self._write(await current.get_child("0:Id"), ua.Variant(state_id, S.NodeId))

    async def _apply_state(self, new: VisionState, emit: bool = True) -> None:
        old, self._ctx.state = self._ctx.state, new
        assert self.nodes is not None  # noqa: S101
        if old != new:
            await self._write_current(self.nodes.vision_state, new.vision, VISION_STATES)
            await self._write_current(self.nodes.automatic_state, new.automatic, AUTOMATIC_STATES)
            desc = self.nodes.new("SystemStateDescriptionDataType")
            desc.State = new.system_state
            desc.StateDescription = new.description
            await self._write(self.nodes.system_state, ua.Variant(desc, S.ExtensionObject))
        if not emit or old is None or old == new:
            return
        label = f"{new.vision}/{new.automatic}" if new.automatic else new.vision
        await self._emit(STATE_CHANGED_EVENT_TYPE, f"state {label}: {new.description}")
        job = ua.Variant(self._ctx.job(), S.ExtensionObject)
        if new.automatic == "ContinuousExecution" and old.automatic != "ContinuousExecution":
            await self._emit(JOB_STARTED_EVENT_TYPE, f"job {job.Value.Id} started", JobId=job)
        if new.automatic == "Ready" and old.automatic != "Ready":
            await self._emit(READY_EVENT_TYPE, "ready", JobId=job)
        if new.vision == "Error" and old.vision != "Error":
            await self._emit(ERROR_EVENT_TYPE, new.description, severity=800)
        if old.vision == "Error" and new.vision != "Error":
            await self._emit(ERROR_RESOLVED_EVENT_TYPE, f"error resolved: {label}")

    async def update_state(
        self,
        status: int | None = None,
        alarms: Iterable[tuple[str, str]] | None = None,
        active_recipe: str | None = None,
    ) -> None:
        """The station's state; None leaves a part as it is. Alarms are the station's whole set."""
        if self.nodes is None:
            return
        if active_recipe is not None:
            self._ctx.activate(active_recipe)
        if status is not None:
            self._status = int(status)
        if alarms is not None:
            now = dict(alarms)
            for name in sorted(set(now) - set(self._alarms)):
                await self._emit(DIAGNOSTIC_INFO_EVENT_TYPE, f"{name} raised: {now[name]}", severity=600)
            for name in sorted(set(self._alarms) - set(now)):
                await self._emit(DIAGNOSTIC_INFO_EVENT_TYPE, f"{name} cleared")
            self._alarms = now
        errors = frozenset(a for a in self._alarms if a in ERROR_ALARMS)
        await self._apply_state(vision_state(self._status, errors))

    def set_recipes(self, recipes: Sequence[str]) -> None:
        self._ctx.recipes = list(recipes)
        self._ctx.prepared &= set(recipes)

    async def publish_verdict(self, summary: dict[str, Any], ts: datetime) -> None:
        """One ResultReadyEvent per decided part (fail-safes included); ``summary`` is the
        ``line.results.history.summary_dict`` of the verdict."""
        if self.nodes is None:
            return
        fields = result_fields(self._new, summary, self._station)
        self._ctx.announced.add(summary)
        recipe = str(summary["recipe_id"])
        if recipe and recipe != self._ctx.active_recipe:
            self._ctx.activate(recipe)
        ev = self._gens[RESULT_READY_EVENT_TYPE].event
        ev.ResultId = ua.Variant(fields["ResultId"], S.ExtensionObject)
        ev.IsPartial = ua.Variant(False, S.Boolean)
        ev.ResultState = ua.Variant(fields["ResultState"], S.Int32)
        ev.JobId = ua.Variant(fields["JobId"], S.ExtensionObject)
        ev.CreationTime = ua.Variant(fields["CreationTime"], S.DateTime)
        ev.PartId = ua.Variant(fields["PartId"], S.ExtensionObject)
        ev.InternalRecipeId = ua.Variant(fields["InternalRecipeId"], S.ExtensionObject)
        ev.InternalConfigurationId = ua.Variant(fields["InternalConfigurationId"], S.ExtensionObject)
        ev.ProcessingTimes = ua.Variant(fields["ProcessingTimes"], S.ExtensionObject)
        ev.ResultContent = ua.Variant(fields["ResultContent"], S.Variant)
        severity = 100 if summary["verdict"] == "pass" else 300
        await self._emit(
            RESULT_READY_EVENT_TYPE, f"{summary['verdict']} part {summary['part_id']}", severity, ts
        )
