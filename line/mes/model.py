"""The MES information model: namespace ``urn:linecheck``, the event types and the nodes of one
station under ``Objects/Stations/<station_id>``.

Kept apart from the server's behaviour (``line.mes.server``) so the address space can be read
in one place. All variables are read-only over the network; the station owns their values.
Browse names use the ``urn:linecheck`` namespace index; event fields are selected by those
names (e.g. ``<ns>:ResultId``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncua import Node, Server, ua

NAMESPACE = "urn:linecheck"

RESULT_READY_FIELDS: tuple[tuple[str, ua.VariantType, bool], ...] = (
    ("ResultId", ua.VariantType.String, False),
    ("CameraId", ua.VariantType.String, False),
    ("PartId", ua.VariantType.Int64, False),
    ("RecipeId", ua.VariantType.String, False),
    ("RecipeCode", ua.VariantType.Int32, False),
    ("ResultCode", ua.VariantType.Int32, False),  # 0 pass, 1 reject, 2 fail-safe reject, 3 hold
    ("Verdict", ua.VariantType.String, False),  # pass | reject | fail_safe_reject | hold
    ("Reason", ua.VariantType.String, False),
    ("RejectMask", ua.VariantType.UInt32, False),  # reject bin, one bit per bin
    ("DefectCount", ua.VariantType.UInt32, False),
    ("DefectClasses", ua.VariantType.String, True),
    ("DefectCounts", ua.VariantType.UInt32, True),  # parallel to DefectClasses
    ("ProcessingUs", ua.VariantType.UInt32, False),  # t_ready -> verdict
    ("VerdictTime", ua.VariantType.DateTime, False),  # also the event's Time
    ("ImageRef", ua.VariantType.String, False),
)

ALARM_FIELDS: tuple[tuple[str, ua.VariantType, bool], ...] = (
    # a station alarm kind (line/loop/alarms.py AlarmKind: fail_safe_rate, deadline_misses,
    # camera_lost, plc_link_lost, log_backlog, storage_fault, engine_below_budget, ...) or the
    # server's own mes_queue_overflow
    ("AlarmName", ua.VariantType.String, False),
    ("Active", ua.VariantType.Boolean, False),  # True raised, False cleared
    ("Detail", ua.VariantType.String, False),
)

# name, type, initial value
STATION_VARIABLES: tuple[tuple[str, ua.VariantType, object], ...] = (
    ("State", ua.VariantType.String, "starting"),
    ("StatusBits", ua.VariantType.UInt32, 0),
    ("ActiveRecipe", ua.VariantType.String, ""),
    ("ActiveRecipeCode", ua.VariantType.Int32, -1),
    ("ActiveRecipeReason", ua.VariantType.String, ""),
    ("Recipes", ua.VariantType.String, []),
    ("Inspected", ua.VariantType.UInt64, 0),
    ("Rejected", ua.VariantType.UInt64, 0),
    ("FailSafe", ua.VariantType.UInt64, 0),
    ("DeadlineMisses", ua.VariantType.UInt64, 0),
    ("PublishDropped", ua.VariantType.UInt64, 0),  # verdicts the station could not queue for MES
    ("CameraLinkState", ua.VariantType.String, "disconnected"),
    ("PlcLinkState", ua.VariantType.String, "disconnected"),
    ("LastResult", ua.VariantType.String, ""),  # JSON summary (line.results.history), historized
    ("ActiveAlarms", ua.VariantType.String, []),  # names of the station's active alarms
    # the plant MQTT uplink (docs/mqtt-uplink.md); "disabled" when the station has none
    ("UplinkLinkState", ua.VariantType.String, "disabled"),
    ("UplinkOutboxDepth", ua.VariantType.UInt64, 0),  # messages not yet acknowledged by the broker
    ("UplinkOldestAgeS", ua.VariantType.Double, 0.0),  # age of the oldest of them, seconds
)


@dataclass
class StationNodes:
    idx: int
    station: Node
    variables: dict[str, Node]
    result_ready_type: Node
    alarm_type: Node


async def _event_type(
    server: Server, idx: int, name: str, fields: tuple[tuple[str, ua.VariantType, bool], ...]
) -> Node:
    base = server.get_node(ua.ObjectIds.BaseEventType)
    etype = await base.add_object_type(idx, name)
    for field, vtype, is_array in fields:
        default = [] if is_array else ua.get_default_value(vtype)
        prop = await etype.add_property(idx, field, default, varianttype=vtype)
        if is_array:
            await prop.write_value_rank(ua.ValueRank.OneDimension)
    return etype


async def build_station(server: Server, station_id: str) -> StationNodes:
    idx = await server.register_namespace(NAMESPACE)
    result_ready = await _event_type(server, idx, "ResultReadyEventType", RESULT_READY_FIELDS)
    alarm = await _event_type(server, idx, "StationAlarmEventType", ALARM_FIELDS)
    stations = await server.nodes.objects.add_folder(idx, "Stations")
    station = await stations.add_object(idx, station_id)
    variables: dict[str, Node] = {}
    for name, vtype, initial in STATION_VARIABLES:
        var = await station.add_variable(idx, name, initial, varianttype=vtype)
        if isinstance(initial, list):
            await var.write_value_rank(ua.ValueRank.OneDimension)
        variables[name] = var
    last = variables["LastResult"]
    # history comes from the result log (line.results.history), not from asyncua's subscription
    await last.write_attribute(
        ua.AttributeIds.Historizing, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
    )
    await last.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
    await last.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
    return StationNodes(idx, station, variables, result_ready, alarm)


def status(code: int) -> ua.StatusCode:
    """asyncua's type hints want its NewType wrappers; plain ints are what it uses at run time."""
    return ua.StatusCode(code)  # type: ignore[arg-type]


def datavalue(variant: ua.Variant, ts: datetime | None = None) -> ua.DataValue:
    return ua.DataValue(variant, SourceTimestamp=ts, ServerTimestamp=ts)  # type: ignore[arg-type]


def arg(name: str, vtype: ua.VariantType, description: str, array: bool = False) -> ua.Argument:
    a = ua.Argument()
    a.Name = name
    a.DataType = ua.NodeId(vtype.value)  # type: ignore[arg-type]
    a.ValueRank = ua.ValueRank.OneDimension if array else ua.ValueRank.Scalar
    if array:
        a.ArrayDimensions = [0]
    a.Description = ua.LocalizedText(description)
    return a
