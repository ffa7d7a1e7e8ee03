"""linecheck results in OPC 40100-1 shape: the ``ResultDataType`` fields of one result, built
from the JSON-ready dict of ``line.results.history`` (``summary_dict`` for a live verdict,
``record_dict`` for a logged one), and the filtered reads the result methods need.

Identities (documented in docs/opcua-machine-vision.md):

- ``ResultId.Id`` = the result log's ``result_id``; ``PartId.Id`` = the part number as text
  (the id types of OPC 40100-1 1.00 are structures with one field, ``Id``).
- ``InternalRecipeId.Id`` = the recipe id, ``Version`` = its PLC recipe code.
- ``JobId.Id`` = ``<station>/<recipe>``: a job is the continuous execution of one recipe.
- ``InternalConfigurationId.Id`` = the station id (no configuration management).
- ``ResultState``: 1 Completed for pass / reject / hold, 4 Failed for a fail-safe reject.
- ``ResultContent`` = one String, the result's JSON (the ``line.results.history`` encoding: the
  verdict, reject bin mask, fail-safe reason and defect classes; ``defects`` with boxes and
  confidences when read through the result methods).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from asyncua import ua

from line.results.history import ns_to_datetime
from line.results.log import ResultRecord

NewStructure = Callable[[str], Any]  # VisionSystemNodes.new: a MachineVision structure by name

COMPLETED, PROCESSING, ABORTED, FAILED = 1, 2, 3, 4
FAIL_SAFE_CODE = 2  # plc.vocabulary.ResultCode.FAIL_SAFE_REJECT


@dataclass(frozen=True)
class ResultFilter:
    """Filter of ``GetResultListFiltered``; None matches everything."""

    part_id: int | None = None
    recipe_id: str | None = None
    result_codes: tuple[int, ...] | None = None


@runtime_checkable
class ResultLookup(Protocol):
    """Reads by id and by filter, besides the time range reads of ``ResultHistory``. Rows are
    ordered by (t_verdict_ns, rowid). Called from worker threads."""

    def by_id(self, result_id: str) -> ResultRecord | None: ...

    def filtered(
        self, flt: ResultFilter, start_index: int, max_results: int
    ) -> tuple[list[ResultRecord], int]: ...


class AnnouncedResults:
    """The summaries (``line.results.history.summary_dict``) of the last results announced by a
    ResultReadyEvent, by result id. Why: the event goes out when the station decides, while the
    result log commits the row a batch later (or, with a full disk, only once the journal is
    replayed); a client told of a result must be able to fetch it at once (GetResultById)."""

    def __init__(self, keep: int = 4096) -> None:
        self._keep = keep
        self._by_id: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, summary: dict[str, Any]) -> None:
        self._by_id[str(summary["result_id"])] = summary
        while len(self._by_id) > self._keep:
            self._by_id.popitem(last=False)

    def get(self, result_id: str) -> dict[str, Any] | None:
        return self._by_id.get(result_id)


async def logged_soon(
    by_id: Callable[[str], ResultRecord | None], result_id: str, wait_s: float, poll_s: float = 0.02
) -> ResultRecord | None:
    """The row of an announced result, read again until it is committed or ``wait_s`` has passed
    (then None: the caller answers from the announcement). Reads run in a worker thread."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        record = await asyncio.to_thread(by_id, result_id)
        if record is not None or loop.time() >= deadline:
            return record
        await asyncio.sleep(poll_s)


def result_state(result_code: int) -> int:
    return FAILED if int(result_code) == FAIL_SAFE_CODE else COMPLETED


def codes_of_state(state: int) -> tuple[int, ...] | None:
    """Result codes with this ResultState; None = any (0 Undefined is 'no filter')."""
    if state == 0:
        return None
    if state == COMPLETED:
        return (0, 1, 3)
    if state == FAILED:
        return (FAIL_SAFE_CODE,)
    return ()


def job_id(station_id: str, recipe_id: str) -> str:
    return f"{station_id}/{recipe_id}"


def id_struct(new: NewStructure, structure: str, value: str) -> Any:
    """ResultIdDataType, JobIdDataType, PartIdDataType, ...: a structure with one field, Id."""
    out = new(structure)
    out.Id = value
    return out


def recipe_id_internal(new: NewStructure, recipe_id: str, recipe_code: int | None = None) -> Any:
    rid = new("RecipeIdInternalDataType")
    rid.Id = recipe_id
    if recipe_code is not None and recipe_code >= 0:
        rid.Version = str(recipe_code)
    return rid


def configuration_id(new: NewStructure, station_id: str) -> Any:
    cid = new("ConfigurationIdDataType")
    cid.Id = station_id
    return cid


def processing_times(new: NewStructure, d: dict[str, Any]) -> Any:
    end = ns_to_datetime(int(d["t_verdict_ns"]))
    pt = new("ProcessingTimesDataType")
    pt.EndTime = end
    pt.StartTime = end - timedelta(microseconds=int(d["processing_us"]))
    pt.AcquisitionDuration = 0.0
    pt.ProcessingDuration = int(d["processing_us"]) / 1000.0  # Duration: milliseconds
    return pt


def result_fields(new: NewStructure, d: dict[str, Any], station_id: str) -> dict[str, Any]:
    """The ``ResultDataType`` fields (and ``ResultReadyEventType`` properties) of one result."""
    return {
        "ResultId": id_struct(new, "ResultIdDataType", d["result_id"]),
        "IsPartial": False,
        "ResultState": result_state(d["result_code"]),
        "PartId": id_struct(new, "PartIdDataType", str(d["part_id"])),
        "InternalRecipeId": recipe_id_internal(new, d["recipe_id"], d["recipe_code"]),
        "InternalConfigurationId": configuration_id(new, station_id),
        "JobId": id_struct(new, "JobIdDataType", job_id(station_id, d["recipe_id"])),
        "CreationTime": ns_to_datetime(int(d["t_verdict_ns"])),
        "ProcessingTimes": processing_times(new, d),
        "ResultContent": [ua.Variant(json.dumps(d, separators=(",", ":")), ua.VariantType.String)],
    }


def result_data(new: NewStructure, d: dict[str, Any], station_id: str) -> Any:
    result = new("ResultDataType")
    for name, value in result_fields(new, d, station_id).items():
        setattr(result, name, value)
    return result
