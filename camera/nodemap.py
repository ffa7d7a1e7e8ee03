"""Apply a recipe's ``CameraSettings`` through a GenICam node map, for every backend.

Why one module: harvesters (GenApi) and Aravis (ArvGc) expose the same SFNC feature names
with different Python APIs. Each backend wraps its node map in a tiny :class:`NodeAccess`
adapter; validation and ordering live here once.

Contract (docs/architecture.md, recipes): a setting the device cannot take is refused *before* anything
is written (``CameraSettingError`` naming the node, the value and what the device allows), so
the running settings stay untouched; only a fully validated plan is written, and a write
that still fails midway is rolled back to the previous values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from camera.config import CameraSettings
from camera.errors import CameraError, CameraSettingError
from camera.pixel_format import supported_pixel_formats

NodeKind = Literal["int", "float", "enum", "bool", "command", "string", "other"]


@dataclass(frozen=True)
class NodeInfo:
    """What the device says about one feature right now (bounds may depend on other nodes)."""

    name: str
    kind: NodeKind
    minimum: float | None = None
    maximum: float | None = None
    increment: float | None = None
    entries: tuple[str, ...] = ()  # available enumeration entries
    writable: bool = True


class NodeAccess(Protocol):
    """The few node-map operations the settings logic needs; one adapter per backend."""

    def info(self, name: str) -> NodeInfo | None:
        """``None`` when the device does not implement (or currently not offer) ``name``."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: Any) -> None: ...

    def execute(self, name: str) -> None: ...


# PFNC codes of the formats in camera.pixel_format (GenTL buffer info and GigE Vision use them)
PFNC_CODES: Mapping[int, str] = {
    0x01080001: "Mono8",
    0x02180014: "RGB8",
    0x02180015: "BGR8",
    0x02200016: "RGBa8",
    0x01080008: "BayerGR8",
    0x01080009: "BayerRG8",
    0x0108000A: "BayerGB8",
    0x0108000B: "BayerBG8",
}

# SFNC names first, then the pre-SFNC-2 names many GigE cameras (and Aravis' fake camera) use.
DEFAULT_NODE_NAMES: Mapping[str, tuple[str, ...]] = {
    "exposure_us": ("ExposureTime", "ExposureTimeAbs"),
    "gain_db": ("Gain", "GainAbs"),
    "pixel_format": ("PixelFormat",),
    "width": ("Width",),
    "height": ("Height",),
    "offset_x": ("OffsetX",),
    "offset_y": ("OffsetY",),
    "frame_rate": ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"),
    "trigger_selector": ("TriggerSelector",),
    "trigger_mode": ("TriggerMode",),
    "trigger_source": ("TriggerSource",),
    "trigger_activation": ("TriggerActivation",),
    "trigger_software": ("TriggerSoftware",),
    "frame_rate_enable": ("AcquisitionFrameRateEnable",),
}


@dataclass(frozen=True)
class Write:
    node: str
    value: Any


@dataclass
class SettingsPlan:
    """Validated writes in the order they must happen, plus facts the backend needs."""

    writes: list[Write] = field(default_factory=list)
    software_trigger_node: str | None = None


def _names(field_name: str, overrides: Mapping[str, Sequence[str]] | None) -> tuple[str, ...]:
    if overrides and field_name in overrides:
        return tuple(overrides[field_name])
    return DEFAULT_NODE_NAMES[field_name]


def _find(nodes: NodeAccess, candidates: tuple[str, ...]) -> NodeInfo | None:
    for name in candidates:
        info = nodes.info(name)
        if info is not None:
            return info
    return None


def _require(nodes: NodeAccess, candidates: tuple[str, ...], value: Any) -> NodeInfo:
    info = _find(nodes, candidates)
    if info is None:
        raise CameraSettingError(
            candidates[0], value, f"no such node on this device (tried {', '.join(candidates)})"
        )
    return info


def _allowed_numeric(info: NodeInfo) -> str:
    text = f"{_fmt(info.minimum)}..{_fmt(info.maximum)}"
    if info.kind == "int" and info.increment not in (None, 1):
        text += f" in steps of {_fmt(info.increment)}"
    return text


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _check_numeric(info: NodeInfo, value: float) -> Any:
    if info.kind not in ("int", "float"):
        raise CameraSettingError(info.name, value, f"a node of kind {info.kind}, not a number")
    lo = -math.inf if info.minimum is None else info.minimum
    hi = math.inf if info.maximum is None else info.maximum
    if not lo <= value <= hi:
        raise CameraSettingError(info.name, value, _allowed_numeric(info))
    if info.kind == "int":
        if not float(value).is_integer():
            raise CameraSettingError(info.name, value, "an integer " + _allowed_numeric(info))
        inc = int(info.increment or 1)
        base = int(info.minimum or 0)
        if inc > 1 and (int(value) - base) % inc:
            raise CameraSettingError(info.name, value, _allowed_numeric(info))
        return int(value)
    return float(value)


def _check_enum(info: NodeInfo, value: str, restrict: Sequence[str] | None = None) -> str:
    allowed = [e for e in info.entries if restrict is None or e in restrict]
    if info.kind != "enum":
        raise CameraSettingError(info.name, value, f"a node of kind {info.kind}, not an enumeration")
    if value not in allowed:
        raise CameraSettingError(info.name, value, "one of " + (", ".join(allowed) or "(none)"))
    return value


def _writable(info: NodeInfo, value: Any) -> None:
    if not info.writable:
        raise CameraSettingError(info.name, value, "no writes (node is read-only or locked now)")


def plan_settings(
    nodes: NodeAccess,
    settings: CameraSettings,
    overrides: Mapping[str, Sequence[str]] | None = None,
) -> SettingsPlan:
    """Validate every field of ``settings`` against the device; write nothing.

    Raises ``CameraSettingError`` for the first field the device cannot take.
    """
    plan = SettingsPlan()
    w = plan.writes

    if settings.pixel_format is not None:
        info = _require(nodes, _names("pixel_format", overrides), settings.pixel_format)
        _writable(info, settings.pixel_format)
        # the frame must be describable downstream (camera.pixel_format), so the allowed
        # entries are the device's entries that we can also hand to inference
        ours = supported_pixel_formats()
        if settings.pixel_format not in ours and settings.pixel_format in info.entries:
            raise CameraSettingError(
                info.name, settings.pixel_format, "one of " + ", ".join(e for e in info.entries if e in ours)
            )
        w.append(Write(info.name, _check_enum(info, settings.pixel_format, ours)))

    # geometry: offsets go to 0 first so a larger width/height fits, then size, then offsets
    geometry: list[tuple[str, int | None, str]] = [
        ("width", settings.width, "offset_x"),
        ("height", settings.height, "offset_y"),
    ]
    offset_resets: list[Write] = []
    sizes: list[Write] = []
    offsets: list[Write] = []
    for size_field, size, offset_field in geometry:
        offset = getattr(settings, offset_field)
        size_info = None
        if size is not None:
            size_info = _require(nodes, _names(size_field, overrides), size)
            _writable(size_info, size)
        if offset is not None:
            off_info = _require(nodes, _names(offset_field, overrides), offset)
            _writable(off_info, offset)
            off_value = _check_numeric(off_info, offset)
            if size is not None and size_info is not None:
                # the size bound the device reports assumes the *current* offset; the sensor
                # bound is size.max + current offset
                current_off = int(nodes.get(off_info.name) or 0)
                sensor = (size_info.maximum or 0) + current_off
                if off_value + size > sensor:
                    raise CameraSettingError(
                        off_info.name, offset, f"0..{_fmt(sensor - size)} with {size_info.name}={size}"
                    )
                if current_off:
                    offset_resets.append(Write(off_info.name, 0))
                size_info = NodeInfo(
                    size_info.name, size_info.kind, size_info.minimum, sensor, size_info.increment
                )
            offsets.append(Write(off_info.name, off_value))
        if size is not None and size_info is not None:
            sizes.append(Write(size_info.name, _check_numeric(size_info, size)))
    w.extend(offset_resets + sizes + offsets)

    if settings.exposure_us is not None:
        info = _require(nodes, _names("exposure_us", overrides), settings.exposure_us)
        _writable(info, settings.exposure_us)
        w.append(Write(info.name, _check_numeric(info, settings.exposure_us)))
    if settings.gain_db is not None:
        info = _require(nodes, _names("gain_db", overrides), settings.gain_db)
        _writable(info, settings.gain_db)
        w.append(Write(info.name, _check_numeric(info, settings.gain_db)))
    if settings.frame_rate is not None:
        enable = _find(nodes, _names("frame_rate_enable", overrides))
        if enable is not None and enable.kind == "bool" and enable.writable:
            w.append(Write(enable.name, True))
        info = _require(nodes, _names("frame_rate", overrides), settings.frame_rate)
        _writable(info, settings.frame_rate)
        w.append(Write(info.name, _check_numeric(info, settings.frame_rate)))

    _plan_trigger(nodes, settings, overrides, plan)
    return plan


def _plan_trigger(
    nodes: NodeAccess,
    settings: CameraSettings,
    overrides: Mapping[str, Sequence[str]] | None,
    plan: SettingsPlan,
) -> None:
    w = plan.writes
    mode_info = _find(nodes, _names("trigger_mode", overrides))
    selector = _find(nodes, _names("trigger_selector", overrides))
    if settings.trigger_mode == "free_run":
        if mode_info is None:
            return  # a device without triggering is free-running
        if selector is not None and "FrameStart" in selector.entries:
            w.append(Write(selector.name, "FrameStart"))
        w.append(Write(mode_info.name, _check_enum(mode_info, "Off")))
        return

    wanted = settings.trigger_mode
    if mode_info is None:
        raise CameraSettingError(
            "TriggerMode", "On", f"no such node on this device (needed for {wanted} triggering)"
        )
    if selector is not None:
        if "FrameStart" not in selector.entries:
            raise CameraSettingError(selector.name, "FrameStart", "one of " + ", ".join(selector.entries))
        w.append(Write(selector.name, "FrameStart"))
    mode_write = Write(mode_info.name, _check_enum(mode_info, "On"))
    source_value = settings.trigger_source or ("Software" if wanted == "software" else None)
    source_info = _require(nodes, _names("trigger_source", overrides), source_value)
    if source_value is None:
        raise CameraSettingError(
            source_info.name, None, "one of " + ", ".join(e for e in source_info.entries if e != "Software")
        )
    if wanted == "hardware" and source_value == "Software":
        raise CameraSettingError(source_info.name, source_value, "a hardware line for hardware triggering")
    # mode Off while the source changes, then On: some devices refuse source writes while armed
    w.append(Write(mode_info.name, _check_enum(mode_info, "Off")))
    w.append(Write(source_info.name, _check_enum(source_info, source_value)))
    if settings.trigger_activation is not None:
        act = _require(nodes, _names("trigger_activation", overrides), settings.trigger_activation)
        w.append(Write(act.name, _check_enum(act, settings.trigger_activation)))
    w.append(mode_write)
    if wanted == "software":
        cmd = _require(nodes, _names("trigger_software", overrides), "execute")
        if cmd.kind != "command":
            raise CameraSettingError(cmd.name, "execute", f"a command node, found {cmd.kind}")
        plan.software_trigger_node = cmd.name


def apply_plan(nodes: NodeAccess, plan: SettingsPlan) -> None:
    """Write a validated plan; on a failing write, restore what was written and re-raise.

    Raises ``CameraSettingError`` when the device refuses a value it advertised (the
    previous values are back), other ``CameraError`` subclasses pass through.
    """
    previous: list[Write] = []
    try:
        for write in plan.writes:
            try:
                old = nodes.get(write.node)
            except Exception:  # write-only or unreadable: nothing to roll back to
                old = None
            nodes.set(write.node, write.value)
            if old is not None:
                previous.append(Write(write.node, old))
    except Exception as exc:
        for undo in reversed(previous):
            with contextlib.suppress(Exception):  # best effort: report the original failure
                nodes.set(undo.node, undo.value)
        if isinstance(exc, CameraError):
            raise
        raise CameraSettingError(write.node, write.value, f"a value the device accepts ({exc})") from exc
