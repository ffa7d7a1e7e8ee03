"""The MES server in its own process, and the station-side ``OpcUaPublisherSink``.

Why a process: asyncua (encryption, subscriptions, history reads, thousands of GetResults
rows) costs CPU and GIL time; the station's hot path must not feel any of it. The station
only does ``put_nowait`` on a bounded ``multiprocessing`` queue (overflow policy: drop newest,
every drop counted and shown to MES as ``PublishDropped``); the verdict is already in the
durable result log, so MES still finds a dropped event through HistoryRead / GetResults.

Queues (all bounded, spawn context):

- ``data``  station -> server: ``VerdictMessage`` and ``StateUpdate`` (put_nowait, may drop).
- ``ctrl``  station -> server: recipe list updates, replies to recipe requests, stop (never
  dropped: these block for up to ``_CTRL_PUT_S``; they are not on the hot path).
- ``req``   server -> station: start-up report, ``SelectRecipe`` requests, remote halt
  requests (OPC 40100 Halt, Reset, ...), stop. A station thread consumes it and calls the
  injected ``select_recipe(recipe_id, source, user)`` or ``control(action, source, user)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from line.mes.config import OpcUaServerConfig
from line.mes.server import StateUpdate, StationServer
from line.results.history import ResultHistory
from plc.vocabulary import Delivery, LinkState, ResultSink, StatusBits, VerdictMessage

_log = logging.getLogger(__name__)

SelectRecipeCallback = Callable[[str, str, str], tuple[bool, str]]  # (recipe_id, source, user)
ControlCallback = Callable[[str, str, str], tuple[bool, str]]  # (halt|stop|abort|reset|start, source, user)
HistoryFactory = Callable[[], ResultHistory]  # picklable; called in the server process

STOP = "stop"
_CTRL_PUT_S = 5.0
_SOURCE = "opcua"


@dataclass(frozen=True)
class RecipesUpdate:
    recipes: tuple[str, ...]


@dataclass(frozen=True)
class RecipeRequest:
    req_id: int
    recipe_id: str
    user: str


@dataclass(frozen=True)
class ControlRequest:
    req_id: int
    action: str  # halt | stop | abort | reset | start
    user: str


@dataclass(frozen=True)
class RecipeReply:
    req_id: int
    ok: bool
    message: str


# ---- server process ----------------------------------------------------------------------


def server_main(
    config: OpcUaServerConfig,
    history_factory: HistoryFactory,
    recipes: Sequence[str],
    data_q: Any,
    ctrl_q: Any,
    req_q: Any,
    log_level: int = logging.WARNING,
    controllable: bool = False,
) -> None:
    """Entry point of the server process (module level: the spawn context pickles it).
    ``controllable``: the station takes remote halt requests (OPC 40100 state methods)."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s opcua-server %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncua").setLevel(max(log_level, logging.WARNING))
    try:
        asyncio.run(_serve(config, history_factory, recipes, data_q, ctrl_q, req_q, controllable))
    except Exception as exc:  # report start-up failures to the station instead of dying silently
        _log.exception("OPC UA server process failed")
        req_q.put(("error", repr(exc)))
    finally:
        req_q.put(STOP)
        req_q.close()
        req_q.join_thread()


def yield_to_station(nice: int) -> None:
    """Lower every thread of this process (Linux: the nice value and the policy are per thread)
    by ``nice`` (below the station's, which it inherited) under ``SCHED_BATCH``, once the
    server listens; threads started later inherit both.

    Why after start-up: the start (imports, the address space, a first certificate: about 4 s of
    CPU) runs before the station's lanes start, so it competes with no part; at nice 10 on a
    busy machine it took over a minute and the station gave up on it. Why ``SCHED_BATCH``:
    nice only lowers the server's share of the CPU, yet each of its wake-ups (40 subscriptions
    publishing every 50 ms, 50 handshakes) could still preempt a station thread at once; a
    batch thread waits for the running thread's slice to end. MES answers may wait; the
    station's parts may not. ``nice`` 0 keeps the station's own priority and policy."""
    if not nice:
        return
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    try:
        tids = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the main thread at least
        tids = [threading.get_native_id()]
    for tid in tids:
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or the thread ended
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, tid, target)


def _forward(source: Any, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> None:
    """Blocking reader of one multiprocessing queue; hands items to the event loop with
    backpressure (the bounded inbox), ends after the STOP sentinel."""
    while True:
        item = source.get()
        asyncio.run_coroutine_threadsafe(inbox.put(item), loop).result()
        if item == STOP:
            return


async def _serve(
    config: OpcUaServerConfig,
    history_factory: HistoryFactory,
    recipes: Sequence[str],
    data_q: Any,
    ctrl_q: Any,
    req_q: Any,
    controllable: bool = False,
) -> None:
    loop = asyncio.get_running_loop()
    pending: dict[int, asyncio.Future[tuple[bool, str]]] = {}
    ids = itertools.count(1)

    async def ask_station(make: Callable[[int], RecipeRequest | ControlRequest]) -> tuple[bool, str]:
        req_id = next(ids)
        fut: asyncio.Future[tuple[bool, str]] = loop.create_future()
        pending[req_id] = fut
        try:
            req_q.put_nowait(make(req_id))
        except queue.Full:
            pending.pop(req_id, None)
            return False, "station busy"
        try:
            return await fut
        finally:
            pending.pop(req_id, None)

    async def select_recipe(recipe_id: str, user: str) -> tuple[bool, str]:
        return await ask_station(lambda req_id: RecipeRequest(req_id, recipe_id, user))

    async def control(action: str, user: str) -> tuple[bool, str]:
        return await ask_station(lambda req_id: ControlRequest(req_id, action, user))

    history = history_factory()
    server = StationServer(config, history, recipes, select_recipe, control if controllable else None)
    await server.start()
    inbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
    threads = [
        threading.Thread(target=_forward, args=(q, loop, inbox), name=f"opcua-{name}", daemon=True)
        for name, q in (("data", data_q), ("ctrl", ctrl_q))
    ]
    for t in threads:
        t.start()
    yield_to_station(config.nice)
    req_q.put(("ready", config.endpoint))
    stops = 0
    try:
        while stops < 2:  # both queues drained up to their STOP: nothing queued is lost
            item = await inbox.get()
            try:
                if isinstance(item, VerdictMessage):
                    await server.publish_verdict(item)
                elif isinstance(item, StateUpdate):
                    await server.update_state(item)
                elif isinstance(item, RecipesUpdate):
                    await server.set_recipes(item.recipes)
                elif isinstance(item, RecipeReply):
                    fut = pending.get(item.req_id)
                    if fut is not None and not fut.done():
                        fut.set_result((item.ok, item.message))
                elif item == STOP:
                    stops += 1
            except Exception:  # one bad update must not end MES publication
                _log.exception("OPC UA server: cannot apply %r", type(item).__name__)
    finally:
        await server.stop()
        for t in threads:
            await asyncio.to_thread(t.join, 5.0)
        close = getattr(history, "close", None)
        if callable(close):
            close()


# ---- station side ------------------------------------------------------------------------


class OpcUaPublisherSink(ResultSink):
    """``ResultSink`` that feeds the MES server process; ``publish`` never blocks."""

    name = "opcua-mes"

    def __init__(
        self,
        config: OpcUaServerConfig,
        history_factory: HistoryFactory,
        recipes: Sequence[str],
        select_recipe: SelectRecipeCallback,
        *,
        control: ControlCallback | None = None,
        start_timeout_s: float | None = None,
        log_level: int = logging.WARNING,
    ) -> None:
        self.config = config
        self._history_factory = history_factory
        self._recipes = tuple(recipes)
        self._select_recipe = select_recipe
        self._control = control
        self._start_timeout_s = config.start_timeout_s if start_timeout_s is None else start_timeout_s
        self._log_level = log_level
        ctx = mp.get_context("spawn")
        self._data_q: Any = ctx.Queue(maxsize=config.queue_size)
        self._ctrl_q: Any = ctx.Queue(maxsize=64)
        self._req_q: Any = ctx.Queue(maxsize=64)
        self._process: Any = ctx.Process(
            target=server_main,
            args=(config, history_factory, self._recipes, self._data_q, self._ctrl_q, self._req_q, log_level,
                  control is not None),  # fmt: skip
            name=f"opcua-mes-{config.station_id}",
            daemon=True,
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._published = 0
        self._dropped = 0
        self._requests = 0
        self._closed = False

    # lifecycle

    def start(self) -> None:
        """Spawn the server process and wait until it listens (or raise with its error)."""
        self._process.start()
        deadline = time.monotonic() + self._start_timeout_s
        item: Any = ("error", f"no answer within {self._start_timeout_s:g} s")
        while time.monotonic() < deadline:  # short slices: notice a child that died at import
            try:
                item = self._req_q.get(timeout=0.5)
                break
            except queue.Empty:
                if not self._process.is_alive():
                    item = ("error", f"server process exited with code {self._process.exitcode}")
                    break
        kind, detail = item if isinstance(item, tuple) else ("error", "server process ended")
        if kind != "ready":
            self.close()
            raise RuntimeError(f"OPC UA MES server did not start: {detail}")
        self._thread = threading.Thread(target=self._serve_requests, name="opcua-mes-requests", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the server after it has applied everything queued; join it; close the queues."""
        if self._closed:
            return
        self._closed = True
        if self._process.is_alive():
            try:
                self._ctrl_q.put(STOP, timeout=_CTRL_PUT_S)
                self._data_q.put(STOP, timeout=_CTRL_PUT_S)
            except queue.Full:
                pass
            self._process.join(timeout=15.0)
            if self._process.is_alive():
                _log.warning("OPC UA server process did not stop; terminating it")
                self._process.terminate()
                self._process.join(timeout=5.0)
        # after a crash nobody reads our queues: do not wait for their feeder threads to flush
        clean = self._process.exitcode == 0
        if self._thread is not None:
            self._req_q.put(STOP)  # ends our request thread whether or not the child said so
            self._thread.join(timeout=5.0)
        for q in (self._data_q, self._ctrl_q, self._req_q):
            if not clean:
                q.cancel_join_thread()
            q.close()
            q.join_thread()

    @property
    def pid(self) -> int | None:
        return int(self._process.pid) if self._process.pid is not None else None

    @property
    def link_state(self) -> LinkState:
        if self._closed:
            return LinkState.CLOSED
        return LinkState.CONNECTED if self._process.is_alive() else LinkState.FAILED

    # hot path

    def publish(self, verdict: VerdictMessage) -> Delivery:
        try:
            self._data_q.put_nowait(verdict)
        except queue.Full:
            with self._lock:
                self._dropped += 1
                self._pending["publish_dropped"] = self._dropped
            return Delivery(delivered=False, sink=self.name, error="mes queue full")
        except (ValueError, OSError, AssertionError):  # closed queue: after close()
            return Delivery(delivered=False, sink=self.name, error="mes sink closed")
        self._published += 1
        if self._pending:
            self._flush_state()
        return Delivery(delivered=True, sink=self.name)

    def set_status(self, status: StatusBits, active_recipe_code: int) -> None:
        self.update_state(status=int(status), active_recipe_code=int(active_recipe_code))

    def update_state(self, **fields: Any) -> None:
        """Merge fields of ``StateUpdate`` (state, counters, link states, deadline misses) into
        the pending update and try to send it; a full queue keeps it pending (latest wins), so
        state is never lost, only coalesced."""
        StateUpdate(**fields)  # validates the field names now, in the caller's frame
        with self._lock:
            self._pending.update(fields)
        self._flush_state()

    def _flush_state(self) -> None:
        with self._lock:
            if not self._pending:
                return
            update = StateUpdate(**self._pending)
            try:
                self._data_q.put_nowait(update)
            except (queue.Full, ValueError, OSError, AssertionError):
                return
            self._pending.clear()

    def set_recipes(self, recipes: Sequence[str]) -> None:
        """Update the recipe ids ``SelectRecipe`` accepts (and MES sees in ``Recipes``)."""
        self._recipes = tuple(recipes)
        self._ctrl_q.put(RecipesUpdate(self._recipes), timeout=_CTRL_PUT_S)

    def counters(self) -> dict[str, int]:
        return {"published": self._published, "dropped": self._dropped, "recipe_requests": self._requests}

    # recipe requests from MES

    def _serve_requests(self) -> None:
        while True:
            item = self._req_q.get()
            if item == STOP:
                return
            if not isinstance(item, (RecipeRequest, ControlRequest)):
                continue  # a late start-up/error report
            self._requests += 1
            try:
                if isinstance(item, ControlRequest):
                    if self._control is None:
                        ok, message = False, "the station takes no remote halt"
                    else:
                        ok, message = self._control(item.action, _SOURCE, item.user)
                else:
                    ok, message = self._select_recipe(item.recipe_id, _SOURCE, item.user)
            except Exception as exc:  # the station's callback must not kill this thread
                _log.exception("station request callback failed")
                ok, message = False, f"error: {exc}"
            try:
                self._ctrl_q.put(RecipeReply(item.req_id, bool(ok), str(message)), timeout=_CTRL_PUT_S)
            except (queue.Full, ValueError):
                _log.warning("could not return the SelectRecipe reply %d", item.req_id)
