"""The OPC 40100 reading of the station's state (line.mes.mv_state): pure mapping."""

from __future__ import annotations

import pytest

from line.mes.mv_state import PRD, SBY, SDT, UDT, vision_state
from plc.vocabulary import StatusBits as B


@pytest.mark.parametrize(
    ("status", "alarms", "expected"),
    [
        (None, frozenset(), ("Preoperational", None, SBY)),
        (B.READY | B.RUNNING, frozenset(), ("Operational", "ContinuousExecution", PRD)),
        (
            B.READY | B.RUNNING | B.ALARM | B.FAIL_SAFE,
            frozenset(),
            ("Operational", "ContinuousExecution", PRD),
        ),
        (B.READY, frozenset(), ("Operational", "Ready", SBY)),
        (B.READY | B.RUNNING | B.SWITCHING, frozenset(), ("Operational", "Initialized", SBY)),
        (B.NONE, frozenset(), ("Halted", None, SDT)),
        (B.ALARM | B.FAIL_SAFE, frozenset(), ("Halted", None, SDT)),  # halted: alarms do not make it Ready
        (B.READY | B.RUNNING | B.ERROR, frozenset(), ("Error", None, UDT)),
        (B.READY | B.RUNNING, frozenset({"inference_error"}), ("Error", None, UDT)),
        (None, frozenset({"camera_lost"}), ("Error", None, UDT)),
    ],
)
def test_station_state_in_40100_terms(
    status: int | None, alarms: frozenset[str], expected: tuple[object, ...]
) -> None:
    s = vision_state(status, alarms)
    assert (s.vision, s.automatic, s.system_state) == expected
