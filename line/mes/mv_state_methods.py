"""The OPC 40100-1 state machine methods: ``Halt``, ``Reset`` (VisionStateMachine), ``Stop``,
``Abort``, ``StartContinuous``, ``StartSingleJob`` (AutomaticModeStateMachine).

A method only asks the station to act (through the injected ``control`` coroutine, the
station's request worker behind it); the state machine then follows what the station reports
(``line.mes.mv_state``), so the address space never claims a state the line is not in. What
the station does (``line.loop.run_gate``): Halt/Stop halt after the parts in flight are decided,
Abort at once; a halted station keeps giving every part the recipe's fail-safe result; Reset
goes from Halted to Ready (or, in Error, clears the alarms); StartContinuous from Ready
resumes deciding, optionally switching the recipe first. Without a ``control`` (a server not
wired to a station) they answer ``ERR_NOT_SUPPORTED`` and change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua

from line.mes.mv_context import (
    ENGINEER_ROLES,
    ERR_NOT_SUPPORTED,
    ERR_REFUSED,
    ERR_TIMEOUT,
    OK,
    ControlFn,
    MvContext,
    S,
    bad,
    caller_may,
    err,
    text,
)

_log = logging.getLogger(__name__)

SwitchFn = Callable[[str, str], Awaitable[int]]  # (recipe_id, user) -> error code


class StateMethods:
    def __init__(self, ctx: MvContext, switch_recipe: SwitchFn, control: ControlFn | None) -> None:
        self._ctx = ctx
        self._switch_recipe = switch_recipe
        self._control = control

    def handlers(self) -> dict[str, Callable[..., Any]]:
        return {
            "Halt": self.halt,
            "Reset": self.reset,
            "Stop": self.stop,
            "Abort": self.abort,
            "StartContinuous": self.start_continuous,
            "StartSingleJob": self.start_single_job,
        }

    async def _act(self, action: str, user: str) -> int:
        if self._control is None:
            _log.info("%s by %s: this server is not wired to a station's remote halt", action, user)
            return ERR_NOT_SUPPORTED
        try:
            ok, message = await asyncio.wait_for(
                self._control(action, user), self._ctx.config.select_recipe_timeout_s
            )
        except asyncio.TimeoutError:
            return ERR_TIMEOUT
        _log.info("%s by %s: %s", action, user, message)
        return OK if ok else ERR_REFUSED

    async def _ask(self, action: str, allowed: tuple[str, ...], args: tuple[ua.Variant, ...]) -> Any:
        """``Halt``/``Reset``/``Stop``/``Abort(Cause: Int32, CauseDescription: String)``."""
        user = caller_may(ENGINEER_ROLES)
        if user is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        if (
            len(args) != 2
            or not isinstance(args[0].Value, int)
            or not isinstance(args[1].Value, (str, type(None)))
        ):
            return bad(ua.StatusCodes.BadInvalidArgument)
        if not self._ctx.in_state(*allowed):
            return bad(ua.StatusCodes.BadInvalidState)
        return [err(await self._act(action, user))]

    async def halt(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("halt", ("Preoperational", "Operational", "Error"), args)

    async def reset(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("reset", ("Halted", "Error"), args)

    async def stop(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("stop", ("ContinuousExecution",), args)

    async def abort(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        return await self._ask("abort", ("ContinuousExecution",), args)

    async def start_single_job(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if caller_may(ENGINEER_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        if not self._ctx.in_state("Ready"):
            return bad(ua.StatusCodes.BadInvalidState)
        return [
            ua.Variant(self._ctx.job(""), S.ExtensionObject),
            err(ERR_NOT_SUPPORTED),
        ]  # inline: continuous only

    async def start_continuous(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``StartContinuous(MeasId, PartId, RecipeId, ProductId, Parameters)``. With a recipe
        id the station switches the recipe (also while parts flow, as the HMI does); from Ready
        (after Halt and Reset) it then resumes deciding; it returns the running job."""
        user = caller_may(ENGINEER_ROLES)
        if user is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        if len(args) != 5:
            return bad(ua.StatusCodes.BadInvalidArgument)
        if not self._ctx.in_state("Ready", "ContinuousExecution"):
            return bad(ua.StatusCodes.BadInvalidState)
        no_job = ua.Variant(self._ctx.job(""), S.ExtensionObject)
        if text(args[3].Value):  # ProductId: no product management
            return [no_job, err(ERR_NOT_SUPPORTED)]
        recipe = text(args[2].Value)
        if recipe:
            code = await self._switch_recipe(recipe, user)
            if code != OK:
                return [no_job, err(code)]
        if self._ctx.in_state("Ready") and self._control is not None:
            code = await self._act("start", user)
            if code != OK:
                return [no_job, err(code)]
        return [ua.Variant(self._ctx.job(), S.ExtensionObject), err(OK)]
