"""OPC UA server for MES (asyncua): station state, counters, ``LastResult`` (history from the
result log), a ``ResultReady`` event per verdict, station alarms, and the methods
``SelectRecipe`` and ``GetResults``.

This class runs inside the server process (``line.mes.process``) and never on the station's
hot path. It takes the result log through the ``ResultHistory`` protocol and the recipe switch
through an injected coroutine, so it can also be driven in-process by tests.

Methods (on ``Objects/Stations/<id>``):

- ``SelectRecipe(RecipeId: String) -> Message: String``. Good when the station switched;
  ``BadUserAccessDenied`` for a caller without the operator role; ``BadInvalidArgument`` for a
  recipe id the station does not know or refuses (Message is not returned on a Bad status);
  ``BadTimeout`` when the station does not answer within ``select_recipe_timeout_s``.
- ``GetResults(From: DateTime, To: DateTime, StartIndex: UInt32, MaxResults: UInt32)
  -> Results: String[], Total: UInt32``. Results in [From, To] (both inclusive) ordered by
  verdict time; ``Results`` holds one JSON object per result (detail encoding, see
  ``line.results.history``), at most ``min(MaxResults, get_results_max)`` of them (MaxResults 0:
  the cap); ``Total`` is the number of results in the range, so a client pages with
  StartIndex += len(Results) until StartIndex >= Total.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from asyncua import Server, ua

from line.mes.address_tarpit import TarpitServer
from line.mes.config import OpcUaServerConfig
from line.mes.machine_vision import MachineVisionFace
from line.mes.model import StationNodes, arg, build_station, datavalue, status
from line.mes.mv_context import ControlFn
from line.mes.security import (
    POLICY_TYPES,
    ConfigUserManager,
    PeerAddressServer,
    RoleRuleset,
    TrustListValidator,
    current_user,
    ensure_server_certificate,
)
from line.results.history import (
    VERDICTS,
    ResultHistory,
    ResultLogHistoryStorage,
    datetime_to_ns,
    ns_to_datetime,
    result_json,
    summary_dict,
)
from plc.vocabulary import ResultCode, StatusBits, VerdictMessage

__all__ = ["OpcUaServerConfig", "StateUpdate", "StationServer"]

_log = logging.getLogger(__name__)

_LOST = {"disconnected", "reconnecting", "failed"}
SelectRecipeFn = Callable[[str, str], Awaitable[tuple[bool, str]]]  # (recipe_id, user) -> (ok, msg)


@dataclass(frozen=True)
class StateUpdate:
    """Station state for MES; ``None`` leaves a value as it is. Counters are the station's own
    totals (they override the server's count of the verdicts it received)."""

    status: int | None = None  # StatusBits
    active_recipe_code: int | None = None
    active_recipe: str | None = None
    active_recipe_reason: str | None = None  # why this recipe: the config, a restored switch, ...
    inspected: int | None = None
    rejected: int | None = None
    fail_safe: int | None = None
    deadline_misses: int | None = None  # cumulative
    camera_link: str | None = None  # LinkState value
    plc_link: str | None = None
    publish_dropped: int | None = None
    uplink_link: str | None = None  # the plant MQTT uplink's LinkState value
    uplink_outbox_depth: int | None = None
    uplink_oldest_age_s: float | None = None
    # the station's active alarms as (AlarmName, Detail); once a station feeds them, they are
    # the only source of the alarms they name (the server stops deriving link and deadline
    # alarms from the link states and miss counts above)
    alarms: tuple[tuple[str, str], ...] | None = None


def state_name(status: int) -> str:
    bits = StatusBits(status)
    for flag, name in (
        (StatusBits.ERROR, "error"),
        (StatusBits.SWITCHING, "switching_recipe"),
        (StatusBits.FAIL_SAFE, "fail_safe"),
        (StatusBits.RUNNING, "running"),
        (StatusBits.READY, "ready"),
    ):
        if flag in bits:
            return name
    return "stopped"


class StationServer:
    def __init__(
        self,
        config: OpcUaServerConfig,
        history: ResultHistory,
        recipes: Sequence[str],
        select_recipe: SelectRecipeFn,
        control: ControlFn | None = None,
    ) -> None:
        self.config = config
        self._history = history
        self._recipes = list(recipes)
        self._select_recipe = select_recipe
        self._server: Server | None = None
        self._users: ConfigUserManager | None = None
        self.nodes: StationNodes | None = None
        self._counts = {"Inspected": 0, "Rejected": 0, "FailSafe": 0}
        self._recipe_codes: dict[int, str] = {}
        self._alarms: dict[str, bool] = {}
        self._fed_alarms = False  # a station feeds its alarm set: derive none here
        self._active_names: list[str] | None = None  # last written ActiveAlarms
        self._misses: deque[tuple[float, int]] = deque()
        self._dropped = 0
        self._result_gen: Any = None
        self._alarm_gen: Any = None
        # the same station as OPC 40100-1 VisionSystemType (line.mes.machine_vision)
        # ``control``: the station's remote halt (OPC 40100 Halt, Reset, Stop, Abort, StartContinuous)
        self.machine_vision = MachineVisionFace(config, history, recipes, select_recipe, control)

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    async def start(self) -> None:
        cfg = self.config
        users = ConfigUserManager(cfg)
        # connections from an address the login guard blocks are held, then closed, unread
        server = TarpitServer(iserver=PeerAddressServer(user_manager=users),  # type: ignore[arg-type]
                              blocked_for=users.address_blocked_for, hold_s=cfg.login_throttle.hold_s)  # fmt: skip
        self._users = users
        await server.init()
        server.iserver.max_pending_activation_seconds = cfg.activation_timeout_s
        server.set_endpoint(cfg.endpoint)
        server.set_server_name(cfg.server_name)
        await server.set_application_uri(cfg.application_uri)
        cert, key = await ensure_server_certificate(cfg)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        ruleset: Any = RoleRuleset(users)  # asyncua's hint names its SimpleRoleRuleset
        server.set_security_policy(
            [POLICY_TYPES[p] for p in cfg.security_policies], permission_ruleset=ruleset
        )
        tokens: list[type] = [ua.UserNameIdentityToken]
        if cfg.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        server.set_certificate_validator(TrustListValidator(cfg.trusted_dir, cfg.rejected_dir))  # type: ignore[arg-type]
        storage = ResultLogHistoryStorage(self._history, cfg.history_max_values)
        server.iserver.history_manager.set_storage(storage)
        self.nodes = nodes = await build_station(server, cfg.station_id)
        storage.serve(nodes.variables["LastResult"].nodeid)
        await nodes.variables["Recipes"].write_value(ua.Variant(self._recipes, ua.VariantType.String))
        station = nodes.station.nodeid
        self._result_gen = await server.get_event_generator(nodes.result_ready_type, station)
        self._alarm_gen = await server.get_event_generator(nodes.alarm_type, station)
        await self._add_methods(nodes)
        await self.machine_vision.build(server, nodes.idx)
        await server.start()
        self._server = server
        _log.info("OPC UA MES server on %s (%s)", cfg.endpoint, ", ".join(cfg.security_policies))

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop()
        if self._users is not None:
            self._users.close()

    async def _add_methods(self, nodes: StationNodes) -> None:
        s = ua.VariantType
        await nodes.station.add_method(
            nodes.idx,
            "SelectRecipe",
            self._m_select_recipe,
            [arg("RecipeId", s.String, "id of a known recipe")],
            [arg("Message", s.String, "what the station did")],
        )
        await nodes.station.add_method(
            nodes.idx,
            "GetResults",
            self._m_get_results,
            [
                arg("From", s.DateTime, "inclusive"),
                arg("To", s.DateTime, "inclusive"),
                arg("StartIndex", s.UInt32, "index of the first result in the range"),
                arg("MaxResults", s.UInt32, "page size; 0 = server maximum"),
            ],
            [
                arg("Results", s.String, "one JSON object per result", array=True),
                arg("Total", s.UInt32, "results in the range"),
            ],
        )

    # ---- methods -------------------------------------------------------------------------

    async def _m_select_recipe(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        caller = current_user()
        if caller is None or caller.role != "operator":
            _log.warning("SelectRecipe refused for %s", caller)
            return status(ua.StatusCodes.BadUserAccessDenied)
        if len(args) != 1 or not isinstance(args[0].Value, str):
            return status(ua.StatusCodes.BadInvalidArgument)
        recipe_id = args[0].Value
        if recipe_id not in self._recipes:
            return status(ua.StatusCodes.BadInvalidArgument)
        try:
            ok, message = await asyncio.wait_for(
                self._select_recipe(recipe_id, caller.name), self.config.select_recipe_timeout_s
            )
        except asyncio.TimeoutError:
            return status(ua.StatusCodes.BadTimeout)
        if not ok:
            _log.info("SelectRecipe(%s) by %s refused by the station: %s", recipe_id, caller.name, message)
            return status(ua.StatusCodes.BadInvalidArgument)
        return [ua.Variant(message, ua.VariantType.String)]

    async def _m_get_results(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if current_user() is None:
            return status(ua.StatusCodes.BadUserAccessDenied)
        values = [a.Value for a in args]
        if (
            len(values) != 4
            or not all(isinstance(v, datetime) for v in values[:2])
            or not all(isinstance(v, int) and v >= 0 for v in values[2:])
        ):
            return status(ua.StatusCodes.BadInvalidArgument)
        lo, hi = datetime_to_ns(values[0]), datetime_to_ns(values[1]) + 999
        # OPC UA's "no bound" dates (1601-01-01, 9999-12-31) lie outside int64 nanoseconds
        lo, hi = max(lo, -(2**63)), min(hi, 2**63 - 1)
        start, limit = int(values[2]), int(values[3]) or self.config.get_results_max
        limit = min(limit, self.config.get_results_max)
        if lo > hi:
            return [ua.Variant([], ua.VariantType.String), ua.Variant(0, ua.VariantType.UInt32)]
        rows, total = await asyncio.to_thread(self._page, lo, hi, start, limit)
        results = [result_json(r, detail=True) for r in rows]
        return [ua.Variant(results, ua.VariantType.String), ua.Variant(total, ua.VariantType.UInt32)]

    def _page(self, lo: int, hi: int, start: int, limit: int) -> tuple[list[Any], int]:
        total = self._history.count(lo, hi)
        rows = self._history.query(lo, hi, start, limit) if start < total else []
        return rows, total

    # ---- station updates (from the station process) --------------------------------------

    async def set_recipes(self, recipes: Sequence[str]) -> None:
        self._recipes = list(recipes)
        self.machine_vision.set_recipes(recipes)
        if self.nodes is not None:
            await self._write("Recipes", self._recipes, ua.VariantType.String)

    async def _write(self, name: str, value: Any, vtype: ua.VariantType, ts: datetime | None = None) -> None:
        """Direct write into the address space (no service round trip: cheap enough to do per
        verdict). Subscribers see the change through asyncua's datachange callbacks."""
        assert self._server is not None and self.nodes is not None  # noqa: S101 - internal invariant
        dv = datavalue(ua.Variant(value, vtype), ts or datetime.now(timezone.utc))
        await self._server.write_attribute_value(self.nodes.variables[name].nodeid, dv)

    async def publish_verdict(self, v: VerdictMessage) -> None:
        if self._server is None or self.nodes is None:
            return
        ts_ns = v.timestamp_ns or time.time_ns()
        ts = ns_to_datetime(ts_ns)
        classes = {name: int(count) for name, count in v.defects}
        summary = summary_dict(v, ts_ns)
        self._recipe_codes[v.recipe_code] = v.recipe_id
        self._counts["Inspected"] += 1
        if v.result_code in (ResultCode.REJECT, ResultCode.FAIL_SAFE_REJECT):
            self._counts["Rejected"] += 1
        if v.result_code == ResultCode.FAIL_SAFE_REJECT or v.reason:
            self._counts["FailSafe"] += 1
        for name, count in self._counts.items():
            await self._write(name, count, ua.VariantType.UInt64)
        await self._write("LastResult", json.dumps(summary, separators=(",", ":")), ua.VariantType.String, ts)
        await self._fire_result(v, ts, classes)
        await self.machine_vision.publish_verdict(summary, ts)

    async def _fire_result(self, v: VerdictMessage, ts: datetime, classes: dict[str, int]) -> None:
        ev = self._result_gen.event
        S = ua.VariantType
        ev.ResultId = ua.Variant(v.result_id, S.String)
        ev.CameraId = ua.Variant(v.camera_id, S.String)
        ev.PartId = ua.Variant(int(v.part_id), S.Int64)
        ev.RecipeId = ua.Variant(v.recipe_id, S.String)
        ev.RecipeCode = ua.Variant(int(v.recipe_code), S.Int32)
        ev.ResultCode = ua.Variant(int(v.result_code), S.Int32)
        ev.Verdict = ua.Variant(VERDICTS.get(int(v.result_code), "?"), S.String)
        ev.Reason = ua.Variant(v.reason, S.String)
        ev.RejectMask = ua.Variant(int(v.reject_mask), S.UInt32)
        ev.DefectCount = ua.Variant(int(v.defect_count), S.UInt32)
        ev.DefectClasses = ua.Variant(list(classes), S.String)
        ev.DefectCounts = ua.Variant(list(classes.values()), S.UInt32)
        ev.ProcessingUs = ua.Variant(max(0, min(int(v.processing_us), 2**32 - 1)), S.UInt32)
        ev.VerdictTime = ua.Variant(ts, S.DateTime)
        ev.ImageRef = ua.Variant(v.image_ref, S.String)
        ev.Severity = 100 if v.result_code == ResultCode.PASS else 300
        await self._result_gen.trigger(ts, f"{ev.Verdict.Value} part {v.part_id} ({v.result_id})")

    async def update_state(self, u: StateUpdate) -> None:
        if self._server is None:
            return
        S = ua.VariantType
        if u.status is not None:
            await self._write("StatusBits", int(u.status), S.UInt32)
            await self._write("State", state_name(u.status), S.String)
        if u.active_recipe_code is not None:
            await self._write("ActiveRecipeCode", int(u.active_recipe_code), S.Int32)
            if u.active_recipe is None and u.active_recipe_code in self._recipe_codes:
                await self._write("ActiveRecipe", self._recipe_codes[u.active_recipe_code], S.String)
        if u.active_recipe is not None:
            await self._write("ActiveRecipe", u.active_recipe, S.String)
        if u.active_recipe_reason is not None:
            await self._write("ActiveRecipeReason", u.active_recipe_reason, S.String)
        for name, value in (("Inspected", u.inspected), ("Rejected", u.rejected), ("FailSafe", u.fail_safe)):
            if value is not None:
                self._counts[name] = int(value)
                await self._write(name, int(value), S.UInt64)
        if u.publish_dropped is not None:
            await self._write("PublishDropped", int(u.publish_dropped), S.UInt64)
            if u.publish_dropped > self._dropped:  # every new drop is alarmed (event per report)
                detail = f"{u.publish_dropped - self._dropped} verdict(s) not published live (total {u.publish_dropped}); they are in the result log"
                self._dropped = int(u.publish_dropped)
                await self._set_alarm("mes_queue_overflow", True, detail, repeat=True)
        if u.uplink_link is not None:
            await self._write("UplinkLinkState", u.uplink_link, S.String)
        if u.uplink_outbox_depth is not None:
            await self._write("UplinkOutboxDepth", int(u.uplink_outbox_depth), S.UInt64)
        if u.uplink_oldest_age_s is not None:
            await self._write("UplinkOldestAgeS", float(u.uplink_oldest_age_s), S.Double)
        if u.alarms is not None:
            await self._apply_alarms(u.alarms)
        if u.camera_link is not None:
            await self._write("CameraLinkState", u.camera_link, S.String)
            if not self._fed_alarms:
                await self._link_alarm("camera_lost", u.camera_link, "camera link")
        if u.plc_link is not None:
            await self._write("PlcLinkState", u.plc_link, S.String)
            if not self._fed_alarms:
                await self._link_alarm("plc_link_lost", u.plc_link, "PLC link")
        if u.deadline_misses is not None:
            await self._write("DeadlineMisses", int(u.deadline_misses), S.UInt64)
            if not self._fed_alarms:
                await self._check_misses(int(u.deadline_misses))
        await self.machine_vision.update_state(u.status, u.alarms, u.active_recipe)

    async def _apply_alarms(self, active: tuple[tuple[str, str], ...]) -> None:
        """The station's alarm set (line/loop/alarms.py): raise what it has, clear what it dropped.
        The server's own ``mes_queue_overflow`` is not the station's and stays as it is."""
        self._fed_alarms = True
        now = dict(active)
        for name, detail in now.items():
            await self._set_alarm(name, True, detail)
        for name in [n for n, on in self._alarms.items() if on and n not in now and n != "mes_queue_overflow"]:
            await self._set_alarm(name, False, "cleared")
        if sorted(now) != self._active_names:  # subscribers hear a change, not a refresh every second
            self._active_names = sorted(now)
            await self._write("ActiveAlarms", self._active_names, ua.VariantType.String)

    async def _link_alarm(self, name: str, state: str, what: str) -> None:
        """Lost = disconnected / reconnecting / failed; "connecting" (start-up) and "closed"
        (orderly shutdown) leave the alarm as it is."""
        if state in _LOST:
            await self._set_alarm(name, True, f"{what} {state}")
        elif state == "connected":
            await self._set_alarm(name, False, f"{what} {state}")

    async def _check_misses(self, total: int) -> None:
        cfg = self.config.deadline_alarm
        now = time.monotonic()
        self._misses.append((now, total))
        while len(self._misses) > 1 and now - self._misses[1][0] >= cfg.window_s:
            self._misses.popleft()
        in_window = total - self._misses[0][1]
        await self._set_alarm(
            "deadline_misses", in_window > cfg.threshold, f"{in_window} deadline misses in {cfg.window_s:g} s"
        )

    async def _set_alarm(self, name: str, active: bool, detail: str, repeat: bool = False) -> None:
        """Fire an alarm event on each transition (raised / cleared), not on every update."""
        if self._alarms.get(name, False) == active and not repeat:
            return
        self._alarms[name] = active
        ev = self._alarm_gen.event
        ev.AlarmName = ua.Variant(name, ua.VariantType.String)
        ev.Active = ua.Variant(active, ua.VariantType.Boolean)
        ev.Detail = ua.Variant(detail, ua.VariantType.String)
        ev.Severity = 700 if active else 100
        await self._alarm_gen.trigger(message=f"{name} {'raised' if active else 'cleared'}: {detail}")

    @property
    def active_alarms(self) -> list[str]:
        return sorted(k for k, v in self._alarms.items() if v)
