"""The uplink as one of the station's sinks, for its lifecycle and its face: the station starts
and closes it with the others, the HMI, ``/metrics``, ``/healthz`` and the station snapshot show
its link state and counters as they show every other link, and it hears the station's status
register (published in the retained state message).

The part messages themselves go through the station's observer hook (:func:`part_observer`),
which runs after the verdict is final and carries the phase timings; ``publish`` here only
reports whether the uplink can still take parts, and returns at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from line.uplink.commands import RecipeCommands
from line.uplink.payload import PartFacts
from line.uplink.publisher import Uplink
from plc.vocabulary import Delivery, LinkState, ResultSink, StatusBits, VerdictMessage

if TYPE_CHECKING:
    from line.results.log import ResultRecord

class UplinkSink(ResultSink):
    name = "mqtt_uplink"

    def __init__(self, uplink: Uplink, commands: RecipeCommands | None = None) -> None:
        self.uplink = uplink
        self.commands = commands

    def publish(self, verdict: VerdictMessage) -> Delivery:
        return Delivery(not self.uplink.queue_full(), self.name)

    def set_status(self, status: StatusBits, active_recipe_code: int) -> None:
        self.uplink.status_bits = int(status)

    @property
    def link_state(self) -> LinkState:
        return self.uplink.link.lifecycle.state

    def uplink_figures(self) -> dict[str, object]:
        """For the MES server (``StateUpdate.uplink_*``): link state, outbox depth, oldest age."""
        snap = self.uplink.snapshot()
        return {"uplink_link": self.link_state.value, "uplink_outbox_depth": int(snap["outbox_depth"]),
                "uplink_oldest_age_s": float(snap["oldest_age_s"])}  # fmt: skip

    def counters(self) -> dict[str, int]:
        snap = self.uplink.snapshot()
        return {k: int(v) for k, v in snap.items() if isinstance(v, int | float) and not isinstance(v, bool)}

    def start(self) -> None:
        if self.commands is not None:
            self.commands.start()
        self.uplink.start()

    def close(self) -> None:
        if self.commands is not None:
            self.commands.close()
        self.uplink.close()


def part_facts(r: ResultRecord, reject_bin: int) -> PartFacts:
    """Plain values from the station's result record (read once, on the hot path)."""
    return PartFacts(r.result_id, r.camera_id, r.part_id, r.frame_id, r.recipe_id, r.recipe_code, r.result_code,
                     reject_bin, r.reject_mask, r.reason, r.defects_json, r.timings_json, r.processing_us,
                     r.t_verdict_ns, r.image_ref)  # fmt: skip
