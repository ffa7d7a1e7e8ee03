"""Controllable camera and engine for station tests: real threads and timing, scripted
content (what a unit of the station must do when a camera or a model misbehaves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from camera.config import CameraSettings
from camera.errors import CameraRetryableError, FetchTimeout
from camera.frame import Frame, FrameStatus, GroundTruth
from camera.source import CameraState, FrameSource
from inference.config import EngineOptions
from inference.detections import Detections
from inference.engine import DetectionResult, Engine, ImageInput
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe


class ScriptedSource(FrameSource):
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        rate_hz: float = 100.0
        width: int = 64
        height: int = 48
        fail_parts: tuple[int, ...] = ()  # part ids whose fetch raises (camera error)
        incomplete_parts: tuple[int, ...] = ()
        defective_parts: tuple[int, ...] = ()  # frame value 255 -> the fake engine reports a defect
        choking_parts: tuple[int, ...] = ()  # frame value 1 -> the fake engine raises
        stalling_parts: tuple[int, ...] = ()  # frame value 200 -> the fake engine takes ``stall_s``
        max_parts: int | None = None

    def __init__(self, camera_id: str, options: Options, settings: CameraSettings | None = None) -> None:
        super().__init__(camera_id)
        self.options = options
        self._part = 0
        self._next_t = 0.0
        self.released = 0
        self.outstanding: set[int] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._next_t = time.monotonic()
        if self.state is CameraState.CLOSED:  # opened by the first start, as the real sources
            self._set_state(CameraState.CONNECTED)
        self._set_state(CameraState.ACQUIRING)

    def stop(self) -> None:
        if self.state is CameraState.ACQUIRING:
            self._set_state(CameraState.CONNECTED)

    def fetch(self, timeout_s: float) -> Frame:
        if self.options.max_parts is not None and self._part >= self.options.max_parts:
            time.sleep(min(timeout_s, 0.01))
            raise FetchTimeout("no more parts")
        # a free-running camera does not catch up after a stall: its clock restarts
        self._next_t = max(self._next_t + 1.0 / self.options.rate_hz, time.monotonic())
        delay = self._next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._part += 1
        part = self._part
        if part in self.options.fail_parts:
            raise CameraRetryableError(f"scripted camera failure at part {part}")
        value = (255 if part in self.options.defective_parts else 1 if part in self.options.choking_parts
                 else 200 if part in self.options.stalling_parts else 10)  # fmt: skip
        data = np.full((self.options.height, self.options.width), value, np.uint8)
        status = FrameStatus.INCOMPLETE if part in self.options.incomplete_parts else FrameStatus.COMPLETE
        with self._lock:
            self.outstanding.add(part)

        def release(part: int = part) -> None:
            with self._lock:
                self.outstanding.discard(part)
                self.released += 1

        self.counters.frames += 1
        return Frame(self.camera_id, part, part, time.time_ns(), time.perf_counter(), "Mono8",
                     self.options.width, self.options.height, status,
                     GroundTruth(defective=part in self.options.defective_parts), data, release)  # fmt: skip


class ScriptedEngine(Engine):
    """Reports one defect of class 0 when the frame's first pixel is 255; can be slowed or broken."""

    backend = "scripted"
    delay_s = 0.0
    stall_s = 0.0  # for a frame of value 200 (``stalling_parts``): one slow call among fast ones
    raise_on_parts: set[int] = set()

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        out = []
        for image in images:
            if self.delay_s:
                time.sleep(self.delay_s)
            if int(image.data.flat[0]) == 200:
                time.sleep(self.stall_s)
            if int(image.data.flat[0]) == 1:
                raise RuntimeError("scripted engine failure")
            if int(image.data.flat[0]) == 255:
                det = Detections(np.array([[10, 10, 30, 30]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
            else:
                det = Detections.empty()
            out.append(DetectionResult(det, {"preprocess": 0.0, "engine": self.delay_s * 1000, "decode": 0.0}))
        return out

    def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        return [tensor]


RECIPE = """\
id: {id}
code: {code}
model: {{onnx: model.onnx, layout: yolov8}}
classes: [scratch, dent]
thresholds: {{default: 0.5}}
reject:
  - {{classes: [scratch], bin: 1}}
cycle_budget_ms: {budget}
"""


def write_recipes(folder: Path, budget_ms: float = 200.0, count: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"not checked in fake-engine tests")
    for i in range(count):
        (folder / f"r{i + 1}.yaml").write_text(RECIPE.format(id=f"r{i + 1}", code=i + 1, budget=budget_ms))
    return folder


def scripted_book(folder: Path, budget_ms: float, delay_s: float = 0.0, stall_s: float = 0.0) -> RecipeBook:
    """A recipe book on scripted engines, switched to recipe ``r1``."""

    def factory(recipe: Recipe) -> ScriptedEngine:
        engine = ScriptedEngine(recipe.detector_spec(), EngineOptions())
        engine.delay_s, engine.stall_s = delay_s, stall_s
        return engine

    book = RecipeBook(write_recipes(folder, budget_ms=budget_ms), factory, check_models=False)
    assert book.switch("r1", "test").ok  # noqa: S101
    return book


class LaunchingEngine(ScriptedEngine):
    """Behaves like a GPU engine towards the station: ``try_launch`` reserves the engine
    without blocking and queues the work (the result is due ``delay_s`` later); ``finish``
    waits for it and gives the engine back; ``detect`` waits for the engine."""

    backend = "scripted-gpu"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.busy = threading.Lock()
        self.launch_threads: list[str] = []
        self.finished = 0

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        with self.busy:
            return super().detect(images)

    def try_launch(self, images: Sequence[ImageInput]) -> object | None:
        if not self.busy.acquire(blocking=False):
            return None
        self.launch_threads.append(threading.current_thread().name)
        delay, self.delay_s = self.delay_s, 0.0
        try:
            result: object = super().detect(images)
        except Exception as exc:  # a device error surfaces when the work is waited for
            result = exc
        finally:
            self.delay_s = delay
        return (time.perf_counter() + delay * len(images), result)

    def finish(self, launched: object) -> list[DetectionResult]:
        due, result = launched  # type: ignore[misc]
        try:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if isinstance(result, Exception):
                raise result
            return result  # type: ignore[no-any-return]
        finally:
            self.finished += 1
            self.busy.release()
