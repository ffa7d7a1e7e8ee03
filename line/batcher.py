"""Cross-camera batching: several lanes' frames go through the engine in one call.

Each lane's inference thread hands its image to :meth:`Batcher.detect` and blocks; one batcher
thread takes everything that is waiting (no timer: while one batch runs, the next gathers —
so an idle line sees no added delay) and runs it as one ``engine.detect`` call. With
``pad_to`` the batch is padded to a fixed size so a CUDA graph captured for that shape is
replayed every time. Decisions and PLC writes stay on the lanes' threads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from inference.engine import DetectionResult, Engine, ImageInput


@dataclass(eq=False)
class _Request:
    engine: Engine
    image: ImageInput
    done: threading.Event = field(default_factory=threading.Event)
    result: DetectionResult | None = None
    error: BaseException | None = None


class Batcher:
    def __init__(self, max_batch: int, pad_to: int | None = None) -> None:
        self.max_batch = max_batch
        self.pad_to = pad_to
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.batches = 0
        self.images = 0
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def detect(self, engine: Engine, image: ImageInput) -> DetectionResult:
        request = _Request(engine, image)
        with self._cond:
            if self._stop:
                raise RuntimeError("batcher stopped")
            self._pending.append(request)
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None  # noqa: S101
        return request.result

    def _take(self) -> list[_Request]:
        with self._cond:
            while not self._pending and not self._stop:
                self._cond.wait()
            if not self._pending:
                return []
            first = self._pending.popleft()
            batch = [first]
            # one engine and one image shape per call (a recipe switch may put two in the queue)
            rest: deque[_Request] = deque()
            while self._pending and len(batch) < self.max_batch:
                r = self._pending.popleft()
                same = r.engine is first.engine and r.image.data.shape == first.image.data.shape
                (batch if same and r.image.pixel_format == first.image.pixel_format else rest).append(r)
            self._pending.extendleft(reversed(rest))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            images = [r.image for r in batch]
            if self.pad_to and len(images) < self.pad_to:
                images += [images[-1]] * (self.pad_to - len(images))
            try:
                results = batch[0].engine.detect(images)
                for request, result in zip(batch, results, strict=False):
                    request.result = result
            except BaseException as exc:  # every waiting lane gets the error (→ fail-safe)
                for request in batch:
                    request.error = exc
            self.batches += 1
            self.images += len(batch)
            for request in batch:
                request.done.set()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
