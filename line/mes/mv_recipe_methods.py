"""The OPC 40100-1 recipe management methods: ``GetRecipeListFiltered``, ``PrepareRecipe``,
``UnprepareRecipe``, and the recipe switch that ``StartContinuous`` with a recipe id asks for.

The switch goes to the same injected ``select_recipe`` coroutine as ``SelectRecipe`` of the
simple model: the station audits and applies it (or refuses it, leaving the active recipe)
exactly as for the HMI. linecheck recipe ids are internal ids; there are no external ids or
products, so a filter on those matches nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asyncua import ua

from line.mes.mv_context import (
    ENGINEER_ROLES,
    ERR_RECIPE_ACTIVE,
    ERR_REFUSED,
    ERR_TIMEOUT,
    ERR_UNKNOWN_RECIPE,
    OK,
    MvContext,
    RecipeSwitchFn,
    S,
    bad,
    caller_may,
    err,
    text,
)
from line.mes.mv_results import recipe_id_internal

_log = logging.getLogger(__name__)


class RecipeMethods:
    def __init__(self, ctx: MvContext, select_recipe: RecipeSwitchFn) -> None:
        self._ctx = ctx
        self._select_recipe = select_recipe

    def handlers(self) -> dict[str, Callable[..., Any]]:
        return {
            "GetRecipeListFiltered": self.get_recipe_list,
            "PrepareRecipe": self.prepare_recipe,
            "UnprepareRecipe": self.unprepare_recipe,
        }

    async def switch(self, recipe: str, user: str) -> int:
        """Switch the station to ``recipe``; an error code (OK when it switched)."""
        if recipe not in self._ctx.recipes:
            _log.info("StartContinuous(%s) by %s: unknown recipe", recipe, user)
            return ERR_UNKNOWN_RECIPE
        try:
            ok, message = await asyncio.wait_for(
                self._select_recipe(recipe, user), self._ctx.config.select_recipe_timeout_s
            )
        except asyncio.TimeoutError:
            return ERR_TIMEOUT
        if not ok:
            _log.info("StartContinuous(%s) by %s refused by the station: %s", recipe, user, message)
            return ERR_REFUSED
        self._ctx.activate(recipe)
        return OK

    async def get_recipe_list(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``GetRecipeListFiltered(ExternalId, ProductId, IsPrepared, MaxResults, StartIndex,
        Timeout)``: the station's recipes. IsPrepared: 0 false, 1 true, 2 don't care
        (TriStateBoolean)."""
        if caller_may(ENGINEER_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        if len(args) != 6 or not all(isinstance(a.Value, int) for a in args[2:]):
            return bad(ua.StatusCodes.BadInvalidArgument)
        prepared_filter, max_results, start = int(args[2].Value), int(args[3].Value), int(args[4].Value)
        ids = [] if text(args[0].Value) or text(args[1].Value) else sorted(self._ctx.recipes)
        if prepared_filter in (0, 1):
            ids = [r for r in ids if (r in self._ctx.prepared) == bool(prepared_filter)]
        page = ids[start : start + max_results] if max_results else ids[start:]
        return [
            ua.Variant(start + len(page) >= len(ids), S.Boolean),
            ua.Variant(len(ids), S.UInt32),
            ua.Variant(0, S.UInt32),
            ua.Variant([recipe_id_internal(self._ctx.new, r) for r in page], S.ExtensionObject),
            err(OK),
        ]

    @staticmethod
    def _recipe_arg(args: tuple[ua.Variant, ...]) -> str | None:
        """``ExternalId``/``InternalIdIn`` of Prepare/Unprepare: linecheck ids are internal ids."""
        if len(args) != 2:
            return None
        return text(args[1].Value) or text(args[0].Value)

    async def prepare_recipe(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """The station builds and warms a recipe's engine when it switches to it (and keeps the
        active one warm), so preparing is bookkeeping: IsCompleted is always True."""
        if caller_may(ENGINEER_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        recipe = self._recipe_arg(args)
        if recipe is None:
            return bad(ua.StatusCodes.BadInvalidArgument)
        rid = ua.Variant(recipe_id_internal(self._ctx.new, recipe), S.ExtensionObject)
        if recipe not in self._ctx.recipes:
            return [rid, ua.Variant(False, S.Boolean), err(ERR_UNKNOWN_RECIPE)]
        self._ctx.prepared.add(recipe)
        return [rid, ua.Variant(True, S.Boolean), err(OK)]

    async def unprepare_recipe(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if caller_may(ENGINEER_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        recipe = self._recipe_arg(args)
        if recipe is None:
            return bad(ua.StatusCodes.BadInvalidArgument)
        code = OK
        if recipe not in self._ctx.recipes:
            code = ERR_UNKNOWN_RECIPE
        elif recipe == self._ctx.active_recipe:
            code = ERR_RECIPE_ACTIVE
        else:
            self._ctx.prepared.discard(recipe)
        return [ua.Variant(recipe_id_internal(self._ctx.new, recipe), S.ExtensionObject), err(code)]
