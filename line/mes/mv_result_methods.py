"""The OPC 40100-1 result management methods: ``GetResultById``, ``GetResultComponentsById``,
``GetResultListFiltered``, answered from the station's result log
(``line.mes.mv_results.ResultLookup``) in a worker thread, so a long read never holds up the
server's event loop (events, other clients). A result already announced by a ResultReadyEvent
but not yet committed is answered from the announcement (``AnnouncedResults``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asyncua import ua

from line.mes.mv_context import (
    ERR_NOT_SUPPORTED,
    ERR_UNKNOWN_RESULT,
    MES_ROLES,
    OK,
    MvContext,
    S,
    bad,
    caller_may,
    err,
    text,
)
from line.mes.mv_results import (
    ResultFilter,
    ResultLookup,
    codes_of_state,
    id_struct,
    logged_soon,
    result_data,
)
from line.results.history import ResultHistory, record_dict

# How long GetResultById waits for the result log to commit a result the client was already told
# of by a ResultReadyEvent (the writer commits every batch; a stalled log is answered from the
# announcement once this has passed).
COMMIT_WAIT_S = 1.0


class ResultMethods:
    def __init__(self, ctx: MvContext, history: ResultHistory) -> None:
        self._ctx = ctx
        self._lookup = history if isinstance(history, ResultLookup) else None

    def handlers(self) -> dict[str, Callable[..., Any]]:
        return {
            "GetResultById": self.get_result_by_id,
            "GetResultComponentsById": self.get_result_components,
            "GetResultListFiltered": self.get_result_list,
        }

    async def _find(self, args: tuple[ua.Variant, ...]) -> Any:
        """(record dict | None, error) for GetResultById / GetResultComponentsById."""
        if len(args) != 2 or not isinstance(args[1].Value, int):
            return None, bad(ua.StatusCodes.BadInvalidArgument)
        raw = args[0].Value
        if not isinstance(raw, str) and not hasattr(raw, "Id"):  # ResultIdDataType (or a plain String)
            return None, bad(ua.StatusCodes.BadInvalidArgument)
        if self._lookup is None:
            return None, ERR_NOT_SUPPORTED
        result_id = text(raw)
        announced = self._ctx.announced.get(result_id)
        # an announced result may be a batch ahead of the log: give the log a moment
        record = await logged_soon(self._lookup.by_id, result_id, COMMIT_WAIT_S if announced else 0.0)
        if record is not None:
            return record_dict(record, detail=True), OK
        if announced is not None:  # announced, not yet in the log: what the event said
            return announced, OK
        return None, ERR_UNKNOWN_RESULT

    def _result(self, found: dict[str, Any] | None) -> Any:
        return result_data(self._ctx.new, found, self._ctx.station) if found else self._ctx.new("ResultDataType")

    async def get_result_by_id(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if caller_may(MES_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        found, code = await self._find(args)
        if isinstance(code, ua.StatusCode):
            return code
        return [ua.Variant(0, S.UInt32), ua.Variant(self._result(found), S.ExtensionObject), err(code)]

    async def get_result_components(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        if caller_may(MES_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        found, code = await self._find(args)
        if isinstance(code, ua.StatusCode):
            return code
        r, new, x = self._result(found), self._ctx.new, S.ExtensionObject
        return [
            ua.Variant(False, S.Boolean),  # HasTransferableDataOnFile
            ua.Variant(0, S.UInt32),  # ResultHandle
            ua.Variant(False, S.Boolean),  # IsPartial
            ua.Variant(False, S.Boolean),  # IsSimulated
            ua.Variant(r.ResultState or 0, S.Int32),
            ua.Variant(id_struct(new, "MeasIdDataType", ""), x),
            ua.Variant(r.PartId or new("PartIdDataType"), x),
            ua.Variant(new("RecipeIdExternalDataType"), x),
            ua.Variant(r.InternalRecipeId or new("RecipeIdInternalDataType"), x),
            ua.Variant(id_struct(new, "ProductIdDataType", ""), x),
            ua.Variant(new("ConfigurationIdDataType"), x),
            ua.Variant(r.InternalConfigurationId or new("ConfigurationIdDataType"), x),
            ua.Variant(r.JobId or new("JobIdDataType"), x),
            ua.Variant(r.CreationTime, S.DateTime),
            ua.Variant(r.ProcessingTimes or new("ProcessingTimesDataType"), x),
            ua.Variant(list(r.ResultContent or []), S.Variant),
            err(code),
        ]

    async def get_result_list(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``GetResultListFiltered(ResultState, MeasId, PartId, ExternalRecipeId,
        InternalRecipeId, ExternalConfigurationId, InternalConfigurationId, ProductId, JobId,
        MaxResults, StartIndex, Timeout)``, paged; MaxResults 0 and above the server cap mean
        the cap (``get_results_max``)."""
        if caller_may(MES_ROLES) is None:
            return bad(ua.StatusCodes.BadUserAccessDenied)
        v = [a.Value for a in args]
        if len(v) != 12 or not all(isinstance(x, int) for x in (v[0], v[9], v[10], v[11])):
            return bad(ua.StatusCodes.BadInvalidArgument)
        part = text(v[2])
        if part and not part.lstrip("-").isdigit():
            return bad(ua.StatusCodes.BadInvalidArgument)
        recipe = text(v[4])
        job = text(v[8])
        if job:
            prefix = f"{self._ctx.station}/"
            job_recipe = job[len(prefix) :] if job.startswith(prefix) else None
            if job_recipe is None or (recipe and recipe != job_recipe):
                return self._page([], 0, 0)
            recipe = job_recipe
        codes = codes_of_state(int(v[0]))
        if any(text(x) for x in (v[1], v[3], v[5], v[7])) or codes == ():  # never set by linecheck
            return self._page([], 0, 0)
        config_id = text(v[6])
        if config_id and config_id != self._ctx.station:
            return self._page([], 0, 0)
        if self._lookup is None:
            return [ua.Variant(True, S.Boolean), ua.Variant(0, S.UInt32), ua.Variant(0, S.UInt32),
                    ua.Variant([], S.ExtensionObject), err(ERR_NOT_SUPPORTED)]  # fmt: skip
        cap = self._ctx.config.get_results_max
        limit = min(int(v[9]) or cap, cap)
        start = int(v[10])
        flt = ResultFilter(part_id=int(part) if part else None, recipe_id=recipe or None, result_codes=codes)
        rows, total = await asyncio.to_thread(self._lookup.filtered, flt, start, limit)
        return self._page([record_dict(r, detail=True) for r in rows], total, start)

    def _page(self, rows: list[dict[str, Any]], total: int, start: int) -> list[ua.Variant]:
        return [
            ua.Variant(start + len(rows) >= total, S.Boolean),  # IsComplete
            ua.Variant(total, S.UInt32),  # ResultCount: all matches, for paging
            ua.Variant(0, S.UInt32),  # ResultHandle: results need no release
            ua.Variant([result_data(self._ctx.new, r, self._ctx.station) for r in rows], S.ExtensionObject),
            err(OK),
        ]
