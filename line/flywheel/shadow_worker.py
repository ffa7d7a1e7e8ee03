"""The candidate model's inference in a process of its own.

In a thread of the station's process the candidate shared the interpreter lock with the
production lanes: every pre- and post-processing step of the shadow held up a production frame
(station p99 at 5 Hz went from 75 to 168 ms on a loaded 2-core host). A separate process has
its own interpreter, and it runs at the lowest nice level, so the OS gives the production
process the cores first.

Frames travel through one shared-memory slot: the station copies a frame in only when the
worker is idle (``ShadowWorker.try_submit`` never waits; a busy worker means a skipped frame)
and sends a few bytes that say where it is. The worker answers with the detections; the slot
stays the caller's until the answer arrives, so a disagreement's picture can still be read
from it. Pictures for re-judging (the reviewed set, a golden set) go through the pipe, which
is not on the hot path.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from inference.detections import Detections
from inference.engine import Engine, ImageInput
from line.recipes.model import Recipe

log = logging.getLogger(__name__)

SHADOW_NICE = 19  # the lowest priority short of SCHED_IDLE, which could starve the shadow outright on a busy host
START_TIMEOUT_S = 120.0  # spawn, import, load and warm the candidate on a loaded host
JUDGE_TIMEOUT_S = 60.0

EngineFactory = Callable[[Recipe], Engine]
WarmShape = tuple[int, int, str]


@dataclass(frozen=True)
class Answer:
    """The worker's reply to one request: the candidate's detections (or why there are none)
    and how long the candidate took."""

    request_id: int
    detections: Detections | None
    latency_ms: float
    error: str = ""


class WorkerFailed(RuntimeError):
    """The worker could not start (the candidate model does not load) or has died."""


class ShadowWorker:
    """A spawned process that runs one candidate engine; the parent's side of it."""

    def __init__(self, factory: EngineFactory, recipe: Recipe, warm_shape: WarmShape | None,
                 start_timeout_s: float = START_TIMEOUT_S, nice: int = SHADOW_NICE) -> None:  # fmt: skip
        ctx = multiprocessing.get_context("spawn")  # fork would copy the station's threads and locks
        request_read, self._requests = ctx.Pipe(duplex=False)
        self._answers, answer_write = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=serve, args=(factory, recipe, warm_shape, request_read, answer_write, nice),
                                    name=f"shadow-{recipe.id}", daemon=True)  # fmt: skip
        self._process.start()
        request_read.close()
        answer_write.close()
        self._slot: SharedMemory | None = None
        self._send_lock = threading.Lock()
        self._next_id = 0
        self.alive = False
        if warm_shape is not None:
            h, w, fmt = warm_shape
            self._slot = SharedMemory(create=True, size=h * w * _channels(fmt))
        try:
            ready = self._answers.poll(start_timeout_s)
            message = self._answers.recv() if ready else ("failed", f"the candidate did not start in {start_timeout_s:g} s")
        except (EOFError, OSError):
            message = ("failed", f"the shadow process ended while starting (exit code {self._process.exitcode})")
        if message[0] != "ready":
            self.close()
            raise WorkerFailed(message[1])
        self.alive = True
        self.pid = self._process.pid

    # --- hot path -----------------------------------------------------------------------------
    def try_submit(self, image: np.ndarray, pixel_format: str) -> int | None:
        """Copy ``image`` into the slot and hand it to the worker; the request id, or None when
        another thread is sending right now (the caller counts a skip). The caller must not
        submit again before the answer to this one has arrived."""
        if not self._send_lock.acquire(blocking=False):
            return None
        try:
            if not self.alive:  # closing: a lane that took the tap list just before it changed
                return None
            slot = self._slot
            if slot is None or slot.size < image.nbytes:  # the first frame of an unexpected size
                if slot is not None:
                    _release(slot)
                slot = self._slot = SharedMemory(create=True, size=image.nbytes)
            np.ndarray(image.shape, image.dtype, buffer=slot.buf)[...] = image
            self._next_id += 1
            try:
                self._requests.send((self._next_id, slot.name, image.shape, image.dtype.str, pixel_format))
            except (OSError, ValueError):  # the worker has gone: the collector reports it
                return None
            return self._next_id
        finally:
            self._send_lock.release()

    def slot_image(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """The picture last submitted (valid until the next ``try_submit``)."""
        assert self._slot is not None  # noqa: S101
        return np.ndarray(shape, np.dtype(dtype), buffer=self._slot.buf)

    # --- off the hot path -------------------------------------------------------------------
    def submit_copy(self, image: ImageInput) -> int:
        """Send a picture through the pipe (re-judging stored captures)."""
        with self._send_lock:
            self._next_id += 1
            self._requests.send((self._next_id, np.ascontiguousarray(image.data), None, None, image.pixel_format))
            return self._next_id

    def receive(self) -> Answer:
        """The next answer (blocks); raises ``WorkerFailed`` when the process has ended."""
        try:
            request_id, xyxy, confidence, class_id, latency_ms, error = self._answers.recv()
        except (EOFError, OSError):
            self.alive = False
            raise WorkerFailed(f"the shadow process ended (exit code {self._process.exitcode})") from None
        dets = None if xyxy is None else Detections(xyxy, confidence, class_id)
        return Answer(request_id, dets, latency_ms, error)

    def close(self, timeout_s: float = 10.0) -> None:
        self.alive = False
        with self._send_lock:
            with contextlib.suppress(OSError, ValueError):  # already gone
                self._requests.send(None)
            self._requests.close()
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout_s)
        self._answers.close()
        if self._slot is not None:
            _release(self._slot)
            self._slot = None


def _release(slot: SharedMemory) -> None:
    slot.close()
    slot.unlink()


def _channels(pixel_format: str) -> int:
    return 4 if pixel_format == "RGBa8" else 3 if pixel_format in ("RGB8", "BGR8") else 1


# --- the worker process ---------------------------------------------------------------------
def serve(factory: EngineFactory, recipe: Recipe, warm_shape: WarmShape | None, requests: Connection,
          answers: Connection, nice: int = SHADOW_NICE) -> None:  # fmt: skip
    """The worker's main: lower its own priority before any engine thread exists (threads
    inherit it), load and warm the candidate, then answer requests until told to stop or the
    station's end of the pipe closes."""
    with contextlib.suppress(OSError):  # not permitted: still off the station's interpreter
        os.nice(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the station stops its shadow
    try:
        engine = factory(recipe)
        if warm_shape is not None:
            h, w, fmt = warm_shape
            cam = recipe.camera
            engine.warmup(cam.height or h, cam.width or w, cam.pixel_format or fmt)
    except Exception as exc:
        answers.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    answers.send(("ready", ""))
    slots: dict[str, SharedMemory] = {}
    try:
        _answer_requests(engine, requests, answers, slots)
    finally:
        engine.close()
        for slot in slots.values():
            slot.close()


def _answer_requests(engine: Engine, requests: Connection, answers: Connection, slots: dict[str, SharedMemory]) -> None:
    while True:
        try:
            request: Any = requests.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        request_id, source, shape, dtype, pixel_format = request
        if isinstance(source, str):
            if source not in slots:
                for old in slots.values():  # the station made a bigger slot: the old one is gone
                    old.close()
                slots.clear()
                slots[source] = SharedMemory(name=source)
            image = np.ndarray(shape, np.dtype(dtype), buffer=slots[source].buf)
        else:
            image = source
        t0 = time.perf_counter()
        reply: tuple[Any, ...]
        try:
            dets = engine.detect([ImageInput(image, pixel_format)])[0].detections
            reply = (request_id, dets.xyxy, dets.confidence, dets.class_id, (time.perf_counter() - t0) * 1000, "")
        except Exception as exc:
            reply = (request_id, None, None, None, (time.perf_counter() - t0) * 1000, f"{type(exc).__name__}: {exc}")
        del image  # the slot's buffer must not be exported when it is closed
        try:
            answers.send(reply)
        except (OSError, ValueError):
            return
