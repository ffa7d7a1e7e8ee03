"""What the station's state means in OPC 40100-1 terms: the VisionStateMachine state, the
AutomaticMode sub-state, the SystemState (SEMI E10 codes) and which alarms are errors.

Pure functions of the station's reported ``StatusBits`` and alarm names, kept apart from the
address space so the mapping can be read (and tested) in one place. The state machine follows
what the station reports; methods only ask the station to act.
"""

from __future__ import annotations

from dataclasses import dataclass

from plc.vocabulary import StatusBits

# line/alarms.py AlarmKind values that stop inspection: a camera or the engine failing, or the
# result log losing results. plc may not import line, so the names are repeated here.
ERROR_ALARMS = frozenset({"camera_lost", "inference_error", "storage_fault"})

# SystemStateDataType (OPC 40100-1 12.x, SEMI E10)
PRD, SBY, ENG, SDT, UDT, NST = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class VisionState:
    vision: str  # Preoperational | Halted | Error | Operational
    automatic: str | None  # Initialized | Ready | ContinuousExecution, only while Operational
    system_state: int  # SystemStateDataType
    description: str


PREOPERATIONAL = VisionState("Preoperational", None, SBY, "starting: cameras and engines warming")


def vision_state(status: int | None, error_alarms: frozenset[str] = frozenset()) -> VisionState:
    """``status`` None: the station has not reported yet (starting, engines warming). An error
    alarm wins over every other state, also while starting."""
    bits = StatusBits(status or 0)
    if StatusBits.ERROR in bits or error_alarms:
        what = ", ".join(sorted(error_alarms)) or "station error"
        return VisionState("Error", None, UDT, f"error: {what}")
    if status is None:
        return PREOPERATIONAL
    if not bits & (StatusBits.READY | StatusBits.RUNNING):  # stopped, or halted remotely
        return VisionState("Halted", None, SDT, "halted: every part gets the fail-safe result")
    if StatusBits.SWITCHING in bits:
        return VisionState("Operational", "Initialized", SBY, "switching recipe")
    if StatusBits.RUNNING in bits:
        return VisionState("Operational", "ContinuousExecution", PRD, "inspecting parts")
    return VisionState("Operational", "Ready", SBY, "ready")
