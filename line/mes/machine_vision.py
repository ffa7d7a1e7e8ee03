"""OPC 40100-1 (OPC UA for Machine Vision) face of the MES server: one ``VisionSystemType``
object per station, Simple Inline Vision System Server profile, beside the ``urn:linecheck``
model of ``line.mes.server`` (which stays for existing clients).

What it does, and why it is shaped so:

- The state machines follow what the station reports (``StatusBits`` and its alarm set, see
  ``line.mes.mv_state``); a method only asks the station to act. So the address space never
  claims a state the line is not in.
- ``StartContinuous`` with a recipe id selects the recipe through the same injected
  ``select_recipe`` coroutine as ``SelectRecipe`` of the simple model: the station audits and
  applies the switch (or refuses it, leaving the active recipe) exactly as for the HMI.
- Halt / Stop / Abort / Reset go to an optional injected ``control`` coroutine. The station
  offers no remote stop today; without one they answer the application error
  ``ERR_NOT_SUPPORTED`` and change nothing.
- Result methods read the station's result log (``line.mes.mv_results.ResultLookup``) in a
  worker thread; ``ResultReadyEvent`` is built from the verdict the station publishes.
- Every event is emitted on the VisionSystem object and delivered to subscribers of the
  Server object too: asyncua hands an event only to subscribers of its emitting node, while
  many MES clients subscribe on the Server object only.

Roles: result methods need a named user (the MES role: ``reader`` or above); state and recipe
methods need the engineer role (``operator``). Anonymous callers never call methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from asyncua import Node, Server, ua

from line.mes.config import OpcUaServerConfig
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
from line.mes.mv_results import (
    ResultFilter,
    ResultLookup,
    codes_of_state,
    id_struct,
    job_id,
    recipe_id_internal,
    result_data,
    result_fields,
)
from line.mes.mv_state import ERROR_ALARMS, PREOPERATIONAL, VisionState, vision_state
from line.mes.security import ANONYMOUS, current_user
from line.results.history import ResultHistory, record_dict

__all__ = ["MachineVisionFace"]

_log = logging.getLogger(__name__)

RecipeSwitchFn = Callable[[str, str], Awaitable[tuple[bool, str]]]  # (recipe_id, user) -> (ok, msg)
ControlFn = Callable[[str, str], Awaitable[tuple[bool, str]]]  # (halt|reset|stop|abort, user)

# method Error output: 0 OK; < 0 application-specific (OPC 40100-1: > 0 reserved by the spec)
OK = 0
ERR_UNKNOWN_RECIPE = -1  # the recipe id is not one of the station's recipes
ERR_REFUSED = -2  # the station refused the switch (invalid recipe, engine failed to build)
ERR_TIMEOUT = -3  # the station did not answer in time
ERR_NOT_SUPPORTED = -4  # the station cannot do this (remote stop, single jobs, product ids)
ERR_UNKNOWN_RESULT = -5  # no result with this id in the result log
ERR_RECIPE_ACTIVE = -6  # the active recipe cannot be unprepared

ENGINEER_ROLES = frozenset({"operator", "engineer"})
MES_ROLES = ENGINEER_ROLES | {"reader", "mes"}

S = ua.VariantType


def _err(code: int) -> ua.Variant:
    return ua.Variant(code, S.Int32)


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)  # type: ignore[arg-type]


def _caller_may(roles: frozenset[str]) -> str | None:
    """The caller's name when the role allows it, else None."""
    caller = current_user()
    if caller is None or caller.name == ANONYMOUS or caller.role not in roles:
        return None
    return caller.name


def _text(value: Any) -> str:
    """An id argument: a String subtype, or an Id structure (``.Id``); missing -> ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(getattr(value, "Id", "") or "").strip()


class MachineVisionFace:
    def __init__(
        self,
        config: OpcUaServerConfig,
        history: ResultHistory,
        recipes: Sequence[str],
        select_recipe: RecipeSwitchFn,
        control: ControlFn | None = None,
    ) -> None:
        self._config = config
        self._station = config.station_id
        self._history = history
        self._recipes = list(recipes)
        self._select_recipe = select_recipe
        self._control = control
        self._server: Server | None = None
        self.nodes: VisionSystemNodes | None = None
        self._gens: dict[int, Any] = {}
        self._state: VisionState | None = None
        self._status: int | None = None
        self._alarms: dict[str, str] = {}
        self._active_recipe = ""
        self._prepared: set[str] = set()

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
        handlers: dict[str, Callable[..., Any]] = {
            "Halt": self._m_halt,
            "Reset": self._m_reset,
            "Stop": self._m_stop,
            "Abort": self._m_abort,
            "StartContinuous": self._m_start_continuous,
            "StartSingleJob": self._m_start_single_job,
            "GetRecipeListFiltered": self._m_get_recipe_list,
            "PrepareRecipe": self._m_prepare_recipe,
            "UnprepareRecipe": self._m_unprepare_recipe,
            "GetResultById": self._m_get_result_by_id,
            "GetResultComponentsById": self._m_get_result_components,
            "GetResultListFiltered": self._m_get_result_list,
        }
        for name, handler in handlers.items():
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

    def _job(self, recipe: str | None = None) -> Any:
        """JobIdDataType of the continuous job of a recipe (the active one by default); ''
        gives an empty id (no job started)."""
        recipe = self._active_recipe if recipe is None else recipe
        return id_struct(self._new, "JobIdDataType", job_id(self._station, recipe) if recipe else "")

    def _id(self, structure: str, value: str = "") -> ua.Variant:
        return ua.Variant(id_struct(self._new, structure, value), S.ExtensionObject)

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
        old, self._state = self._state, new
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
        job = ua.Variant(self._job(), S.ExtensionObject)
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
            self._active_recipe = active_recipe
            if active_recipe:
                self._prepared.add(active_recipe)
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
        self._recipes = list(recipes)
        self._prepared &= set(self._recipes)

    async def publish_verdict(self, summary: dict[str, Any], ts: datetime) -> None:
        """One ResultReadyEvent per decided part (fail-safes included); ``summary`` is the
        ``line.results.history.summary_dict`` of the verdict."""
        if self.nodes is None:
            return
        fields = result_fields(self._new, summary, self._station)
        recipe = str(summary["recipe_id"])
        if recipe and recipe != self._active_recipe:
            self._active_recipe = recipe
            self._prepared.add(recipe)
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

    # ---- state machine methods -----------------------------------------------------------

    def _in(self, *states: str) -> bool:
        s = self._state
        return s is not None and (s.vision in states or (s.automatic is not None and s.automatic in states))

    async def _ask(self, action: str, allowed: tuple[str, ...], args: tuple[ua.Variant, ...]) -> Any:
        user = _caller_may(ENGINEER_ROLES)
        if user is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        if (
            len(args) != 2
            or not isinstance(args[0].Value, int)
            or not isinstance(args[1].Value, (str, type(None)))
        ):
            return _status(ua.StatusCodes.BadInvalidArgument)
        if not self._in(*allowed):
            return _status(ua.StatusCodes.BadInvalidState)
        if self._control is None:
            _log.info("%s by %s: the station takes no remote %s", action, user, action)
            return [_err(ERR_NOT_SUPPORTED)]
        try:
            ok, message = await asyncio.wait_for(
                self._control(action, user), self._config.select_recipe_timeout_s
            )
        except asyncio.TimeoutError:
            return [_err(ERR_TIMEOUT)]
        _log.info("%s by %s: %s", action, user, message)
        return [_err(OK if ok else ERR_REFUSED)]

    async def _m_halt(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("halt", ("Preoperational", "Operational", "Error"), args)

    async def _m_reset(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("reset", ("Halted", "Error"), args)

    async def _m_stop(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("stop", ("ContinuousExecution",), args)

    async def _m_abort(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("abort", ("ContinuousExecution",), args)

    async def _m_start_single_job(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if _caller_may(ENGINEER_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        if not self._in("Ready"):
            return _status(ua.StatusCodes.BadInvalidState)
        return [
            ua.Variant(self._job(""), S.ExtensionObject),
            _err(ERR_NOT_SUPPORTED),
        ]  # inline: continuous only

    async def _m_start_continuous(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``StartContinuous(MeasId, PartId, RecipeId, ProductId, Parameters)``. The station
        inspects continuously: with a recipe id it switches the recipe (also while parts
        flow, as the HMI does); without one it returns the running job."""
        user = _caller_may(ENGINEER_ROLES)
        if user is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        if len(args) != 5:
            return _status(ua.StatusCodes.BadInvalidArgument)
        if not self._in("Ready", "ContinuousExecution"):
            return _status(ua.StatusCodes.BadInvalidState)
        no_job = ua.Variant(self._job(""), S.ExtensionObject)
        if _text(args[3].Value):  # ProductId: no product management
            return [no_job, _err(ERR_NOT_SUPPORTED)]
        recipe = _text(args[2].Value)
        if recipe:
            code = await self._switch(recipe, user)
            if code != OK:
                return [no_job, _err(code)]
        return [ua.Variant(self._job(), S.ExtensionObject), _err(OK)]

    async def _switch(self, recipe: str, user: str) -> int:
        if recipe not in self._recipes:
            _log.info("StartContinuous(%s) by %s: unknown recipe", recipe, user)
            return ERR_UNKNOWN_RECIPE
        try:
            ok, message = await asyncio.wait_for(
                self._select_recipe(recipe, user), self._config.select_recipe_timeout_s
            )
        except asyncio.TimeoutError:
            return ERR_TIMEOUT
        if not ok:
            _log.info("StartContinuous(%s) by %s refused by the station: %s", recipe, user, message)
            return ERR_REFUSED
        self._active_recipe = recipe
        self._prepared.add(recipe)
        return OK

    # ---- recipe management ---------------------------------------------------------------

    async def _m_get_recipe_list(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``GetRecipeListFiltered(ExternalId, ProductId, IsPrepared, MaxResults, StartIndex,
        Timeout)``: the station's recipes; no external ids or products, so a filter on those
        matches nothing. IsPrepared: 0 false, 1 true, 2 don't care (TriStateBoolean)."""
        if _caller_may(ENGINEER_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        if len(args) != 6 or not all(isinstance(a.Value, int) for a in args[2:]):
            return _status(ua.StatusCodes.BadInvalidArgument)
        prepared_filter, max_results, start = int(args[2].Value), int(args[3].Value), int(args[4].Value)
        ids = [] if _text(args[0].Value) or _text(args[1].Value) else sorted(self._recipes)
        if prepared_filter in (0, 1):
            ids = [r for r in ids if (r in self._prepared) == bool(prepared_filter)]
        page = ids[start : start + max_results] if max_results else ids[start:]
        return [
            ua.Variant(start + len(page) >= len(ids), S.Boolean),
            ua.Variant(len(ids), S.UInt32),
            ua.Variant(0, S.UInt32),
            ua.Variant([recipe_id_internal(self._new, r) for r in page], S.ExtensionObject),
            _err(OK),
        ]

    def _recipe_arg(self, args: tuple[ua.Variant, ...]) -> str | None:
        """``ExternalId``/``InternalIdIn`` of Prepare/Unprepare: linecheck ids are internal ids."""
        if len(args) != 2:
            return None
        return _text(args[1].Value) or _text(args[0].Value)

    async def _m_prepare_recipe(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """The station builds and warms a recipe's engine when it switches to it (and keeps the
        active one warm), so preparing is bookkeeping: IsCompleted is always True."""
        if _caller_may(ENGINEER_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        recipe = self._recipe_arg(args)
        if recipe is None:
            return _status(ua.StatusCodes.BadInvalidArgument)
        if recipe not in self._recipes:
            return [
                ua.Variant(recipe_id_internal(self._new, recipe), S.ExtensionObject),
                ua.Variant(False, S.Boolean),
                _err(ERR_UNKNOWN_RECIPE),
            ]
        self._prepared.add(recipe)
        return [
            ua.Variant(recipe_id_internal(self._new, recipe), S.ExtensionObject),
            ua.Variant(True, S.Boolean),
            _err(OK),
        ]

    async def _m_unprepare_recipe(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if _caller_may(ENGINEER_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        recipe = self._recipe_arg(args)
        if recipe is None:
            return _status(ua.StatusCodes.BadInvalidArgument)
        code = OK
        if recipe not in self._recipes:
            code = ERR_UNKNOWN_RECIPE
        elif recipe == self._active_recipe:
            code = ERR_RECIPE_ACTIVE
        else:
            self._prepared.discard(recipe)
        return [ua.Variant(recipe_id_internal(self._new, recipe), S.ExtensionObject), _err(code)]

    # ---- result management ---------------------------------------------------------------

    def _lookup(self) -> ResultLookup | None:
        return self._history if isinstance(self._history, ResultLookup) else None

    async def _find(self, args: tuple[ua.Variant, ...]) -> Any:
        """(record dict | None, error) for GetResultById / GetResultComponentsById."""
        lookup = self._lookup()
        if len(args) != 2 or not isinstance(args[1].Value, int):
            return None, _status(ua.StatusCodes.BadInvalidArgument)
        raw = args[0].Value
        if not isinstance(raw, str) and not hasattr(raw, "Id"):  # ResultIdDataType (or a plain String)
            return None, _status(ua.StatusCodes.BadInvalidArgument)
        if lookup is None:
            return None, ERR_NOT_SUPPORTED
        record = await asyncio.to_thread(lookup.by_id, _text(raw))
        if record is None:
            return None, ERR_UNKNOWN_RESULT
        return record_dict(record, detail=True), OK

    async def _m_get_result_by_id(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if _caller_may(MES_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        found, code = await self._find(args)
        if isinstance(code, ua.StatusCode):
            return code
        result = result_data(self._new, found, self._station) if found else self._new("ResultDataType")
        return [ua.Variant(0, S.UInt32), ua.Variant(result, S.ExtensionObject), _err(code)]

    async def _m_get_result_components(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if _caller_may(MES_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        found, code = await self._find(args)
        if isinstance(code, ua.StatusCode):
            return code
        r = result_data(self._new, found, self._station) if found else self._new("ResultDataType")
        x = S.ExtensionObject
        return [
            ua.Variant(False, S.Boolean),  # HasTransferableDataOnFile
            ua.Variant(0, S.UInt32),  # ResultHandle
            ua.Variant(False, S.Boolean),  # IsPartial
            ua.Variant(False, S.Boolean),  # IsSimulated
            ua.Variant(r.ResultState or 0, S.Int32),
            self._id("MeasIdDataType"),
            ua.Variant(r.PartId or self._new("PartIdDataType"), x),
            ua.Variant(self._new("RecipeIdExternalDataType"), x),
            ua.Variant(r.InternalRecipeId or self._new("RecipeIdInternalDataType"), x),
            self._id("ProductIdDataType"),
            ua.Variant(self._new("ConfigurationIdDataType"), x),
            ua.Variant(r.InternalConfigurationId or self._new("ConfigurationIdDataType"), x),
            ua.Variant(r.JobId or self._new("JobIdDataType"), x),
            ua.Variant(r.CreationTime, S.DateTime),
            ua.Variant(r.ProcessingTimes or self._new("ProcessingTimesDataType"), x),
            ua.Variant(list(r.ResultContent or []), S.Variant),
            _err(code),
        ]

    async def _m_get_result_list(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``GetResultListFiltered(ResultState, MeasId, PartId, ExternalRecipeId,
        InternalRecipeId, ExternalConfigurationId, InternalConfigurationId, ProductId, JobId,
        MaxResults, StartIndex, Timeout)``, paged; MaxResults 0 and above the server cap mean
        the cap (``get_results_max``)."""
        if _caller_may(MES_ROLES) is None:
            return _status(ua.StatusCodes.BadUserAccessDenied)
        v = [a.Value for a in args]
        if len(v) != 12 or not all(isinstance(x, int) for x in (v[0], v[9], v[10], v[11])):
            return _status(ua.StatusCodes.BadInvalidArgument)
        part = _text(v[2])
        if part and not part.lstrip("-").isdigit():
            return _status(ua.StatusCodes.BadInvalidArgument)
        recipe = _text(v[4])
        job = _text(v[8])
        if job:
            prefix = f"{self._station}/"
            job_recipe = job[len(prefix) :] if job.startswith(prefix) else None
            if job_recipe is None or (recipe and recipe != job_recipe):
                return self._result_page([], 0, 0)
            recipe = job_recipe
        codes = codes_of_state(int(v[0]))
        if any(_text(x) for x in (v[1], v[3], v[5], v[7])) or codes == ():  # never set by linecheck
            return self._result_page([], 0, 0)
        config_id = _text(v[6])
        if config_id and config_id != self._station:
            return self._result_page([], 0, 0)
        lookup = self._lookup()
        if lookup is None:
            return [ua.Variant(True, S.Boolean), ua.Variant(0, S.UInt32), ua.Variant(0, S.UInt32),
                    ua.Variant([], S.ExtensionObject), _err(ERR_NOT_SUPPORTED)]  # fmt: skip
        cap = self._config.get_results_max
        limit = min(int(v[9]) or cap, cap)
        start = int(v[10])
        flt = ResultFilter(part_id=int(part) if part else None, recipe_id=recipe or None, result_codes=codes)
        rows, total = await asyncio.to_thread(lookup.filtered, flt, start, limit)
        return self._result_page([record_dict(r, detail=True) for r in rows], total, start)

    def _result_page(self, rows: list[dict[str, Any]], total: int, start: int) -> list[ua.Variant]:
        return [
            ua.Variant(start + len(rows) >= total, S.Boolean),  # IsComplete
            ua.Variant(total, S.UInt32),  # ResultCount: all matches, for paging
            ua.Variant(0, S.UInt32),  # ResultHandle: results need no release
            ua.Variant([result_data(self._new, r, self._station) for r in rows], S.ExtensionObject),
            _err(OK),
        ]
