"""camera.nodemap: validation and write order, table-driven against an in-memory node map."""

from __future__ import annotations

from typing import Any

import pytest

from camera.config import CameraSettings
from camera.errors import CameraSettingError
from camera.nodemap import NodeInfo, plan_settings

NODES: dict[str, NodeInfo] = {
    "Width": NodeInfo("Width", "int", 16, 1024, 16),
    "Height": NodeInfo("Height", "int", 16, 768, 2),
    "OffsetX": NodeInfo("OffsetX", "int", 0, 1008, 16),
    "OffsetY": NodeInfo("OffsetY", "int", 0, 752, 2),
    "PixelFormat": NodeInfo("PixelFormat", "enum", entries=("Mono8", "Mono12", "BayerRG8")),
    "ExposureTimeAbs": NodeInfo("ExposureTimeAbs", "float", 10, 1e6),
    "TriggerSelector": NodeInfo("TriggerSelector", "enum", entries=("FrameStart", "AcquisitionStart")),
    "TriggerMode": NodeInfo("TriggerMode", "enum", entries=("Off", "On")),
    "TriggerSource": NodeInfo("TriggerSource", "enum", entries=("Software", "Line0", "Line1")),
    "TriggerActivation": NodeInfo("TriggerActivation", "enum", entries=("RisingEdge", "FallingEdge")),
    "TriggerSoftware": NodeInfo("TriggerSoftware", "command"),
}


class Nodes:
    def __init__(self, **current: Any) -> None:
        self.current = {"OffsetX": 0, "OffsetY": 0, **current}

    def info(self, name: str) -> NodeInfo | None:
        return NODES.get(name)

    def get(self, name: str) -> Any:
        return self.current.get(name)

    def set(self, name: str, value: Any) -> None:
        raise AssertionError("planning must not write")

    def execute(self, name: str) -> None:
        raise AssertionError("planning must not execute")


def _writes(settings: CameraSettings, **current: Any) -> list[tuple[str, Any]]:
    return [(w.node, w.value) for w in plan_settings(Nodes(**current), settings).writes]


def test_software_trigger_plan_order_and_command() -> None:
    plan = plan_settings(Nodes(), CameraSettings(trigger_mode="software"))
    assert [(w.node, w.value) for w in plan.writes] == [
        ("TriggerSelector", "FrameStart"),
        ("TriggerMode", "Off"),
        ("TriggerSource", "Software"),
        ("TriggerMode", "On"),
    ]
    assert plan.software_trigger_node == "TriggerSoftware"


def test_hardware_trigger_with_line_and_edge() -> None:
    writes = _writes(
        CameraSettings(trigger_mode="hardware", trigger_source="Line1", trigger_activation="FallingEdge")
    )
    assert ("TriggerSource", "Line1") in writes and ("TriggerActivation", "FallingEdge") in writes
    assert writes[-1] == ("TriggerMode", "On")


def test_geometry_resets_offsets_first_when_moving_the_roi() -> None:
    writes = _writes(CameraSettings(width=512, offset_x=256), OffsetX=512)
    assert writes[:3] == [("OffsetX", 0), ("Width", 512), ("OffsetX", 256)]
    assert writes[3:] == [("TriggerSelector", "FrameStart"), ("TriggerMode", "Off")]  # free-run by default


def test_exposure_falls_back_to_the_pre_sfnc_name() -> None:
    assert _writes(CameraSettings(exposure_us=500))[0] == ("ExposureTimeAbs", 500.0)


@pytest.mark.parametrize(
    ("settings", "node", "allowed"),
    [
        (CameraSettings(width=1000), "Width", "16..1024 in steps of 16"),
        (CameraSettings(height=9), "Height", "16..768"),
        (CameraSettings(width=1024, offset_x=16), "OffsetX", "0..0 with Width=1024"),
        (CameraSettings(pixel_format="Mono12"), "PixelFormat", "one of Mono8, BayerRG8"),
        (CameraSettings(pixel_format="RGB8"), "PixelFormat", "one of Mono8, BayerRG8"),
        (CameraSettings(exposure_us=5), "ExposureTimeAbs", "10..1000000"),
        (CameraSettings(gain_db=1), "Gain", "no such node on this device (tried Gain, GainAbs)"),
        (CameraSettings(trigger_mode="hardware"), "TriggerSource", "one of Line0, Line1"),
        (
            CameraSettings(trigger_mode="hardware", trigger_source="Software"),
            "TriggerSource",
            "hardware line",
        ),
        (CameraSettings(trigger_mode="hardware", trigger_source="Line7"), "TriggerSource", "one of Software"),
        (
            CameraSettings(trigger_mode="hardware", trigger_source="Line0", trigger_activation="AnyEdge"),
            "TriggerActivation",
            "one of RisingEdge, FallingEdge",
        ),  # fmt: skip
    ],
)
def test_refusals_name_node_value_and_what_is_allowed(
    settings: CameraSettings, node: str, allowed: str
) -> None:
    with pytest.raises(CameraSettingError) as err:
        plan_settings(Nodes(), settings)
    assert err.value.node == node
    assert allowed in err.value.allowed
