"""What the OPC 40100-1 method handlers share: the station's view as the MES server holds it
(recipes, prepared recipes, active recipe, vision state), the caller's role check, the
application error codes and the argument helpers.

One object, written by ``line.mes.machine_vision.MachineVisionFace`` (state updates, verdicts)
and by the handlers (recipe switches, Prepare/Unprepare), read by all of them: the handler
modules (``mv_state_methods``, ``mv_recipe_methods``, ``mv_result_methods``) then need nothing
of the face itself. Everything runs on the server's one event loop, so no lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua

from line.mes.config import OpcUaServerConfig
from line.mes.mv_results import AnnouncedResults, id_struct, job_id
from line.mes.mv_state import VisionState
from line.mes.security import ANONYMOUS, current_user

RecipeSwitchFn = Callable[[str, str], Awaitable[tuple[bool, str]]]  # (recipe_id, user) -> (ok, msg)
# (halt|stop|abort|reset|start, user) -> (ok, message): the station's remote halt
ControlFn = Callable[[str, str], Awaitable[tuple[bool, str]]]
NewStructure = Callable[[str], Any]  # VisionSystemNodes.new

# method Error output: 0 OK; < 0 application-specific (OPC 40100-1: > 0 reserved by the spec)
OK = 0
ERR_UNKNOWN_RECIPE = -1  # the recipe id is not one of the station's recipes
ERR_REFUSED = -2  # the station refused (invalid recipe, engine failed to build, still halting)
ERR_TIMEOUT = -3  # the station did not answer in time
ERR_NOT_SUPPORTED = -4  # the station cannot do this (no remote halt wired, single jobs, product ids)
ERR_UNKNOWN_RESULT = -5  # no result with this id in the result log
ERR_RECIPE_ACTIVE = -6  # the active recipe cannot be unprepared

ENGINEER_ROLES = frozenset({"operator", "engineer"})
MES_ROLES = ENGINEER_ROLES | {"reader", "mes"}

S = ua.VariantType


def err(code: int) -> ua.Variant:
    return ua.Variant(code, S.Int32)


def bad(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)  # type: ignore[arg-type]


def caller_may(roles: frozenset[str]) -> str | None:
    """The caller's name when the role allows it, else None (anonymous never calls methods)."""
    caller = current_user()
    if caller is None or caller.name == ANONYMOUS or caller.role not in roles:
        return None
    return caller.name


def text(value: Any) -> str:
    """An id argument: a String subtype, or an Id structure (``.Id``); missing -> ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(getattr(value, "Id", "") or "").strip()


@dataclass
class MvContext:
    config: OpcUaServerConfig
    new: NewStructure  # a MachineVision structure by name
    recipes: list[str] = field(default_factory=list)
    prepared: set[str] = field(default_factory=set)
    active_recipe: str = ""
    state: VisionState | None = None
    announced: AnnouncedResults = field(default_factory=AnnouncedResults)

    @property
    def station(self) -> str:
        return self.config.station_id

    def in_state(self, *states: str) -> bool:
        s = self.state
        return s is not None and (s.vision in states or (s.automatic is not None and s.automatic in states))

    def job(self, recipe: str | None = None) -> Any:
        """JobIdDataType of the continuous job of a recipe (the active one by default); ''
        gives an empty id (no job started)."""
        recipe = self.active_recipe if recipe is None else recipe
        return id_struct(self.new, "JobIdDataType", job_id(self.station, recipe) if recipe else "")

    def activate(self, recipe: str) -> None:
        self.active_recipe = recipe
        if recipe:
            self.prepared.add(recipe)
