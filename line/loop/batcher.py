"""Cross-camera batching: several lanes' frames go through the engine in one call.

Each lane's inference thread hands its image to :meth:`Batcher.detect` and blocks; one batcher
thread takes what is waiting and runs it as one ``engine.detect`` call. With ``pad_to`` the
batch is padded to a fixed size so a CUDA graph captured for that shape is replayed every time.
Decisions and PLC writes stay on the lanes' threads.

The gather window (``max_wait_s``, Triton's ``max_queue_delay``): cameras triggered by one
part arrive within a fraction of a millisecond of each other. Without a window the first
frame runs alone (padded to the full batch: the full cost) and the other seven wait a whole
batch for the next one — two batches per trigger, which at 8 x 190 Hz is more than the GPU
has (measured: every part missed its 20 ms deadline). With it, a batch waits until every
lane that can submit has submitted (``expected``), the batch is full, or the window ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from inference.engine import DetectionResult, Engine, ImageInput


@dataclass(eq=False)
class BatchRequest:
    engine: Engine
    image: ImageInput
    done: threading.Event = field(default_factory=threading.Event)
    result: DetectionResult | None = None
    error: BaseException | None = None
    # when the batcher took it into a batch and had the batch's results; the batch's size
    t_taken: float = 0.0
    t_done: float = 0.0
    batch: int = 0


class Batcher:
    def __init__(
        self,
        max_batch: int,
        pad_to: int | None = None,
        max_wait_s: float = 0.0,
        expected: Callable[[], int] | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.pad_to = pad_to
        self.max_wait_s = max_wait_s
        self.expected = expected or (lambda: max_batch)  # lanes that may submit to this batch
        self._pending: deque[BatchRequest] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.on_done: Callable[[], None] | None = None  # after each batch's results are set
        self.batches = 0
        self.images = 0
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def submit(self, engine: Engine, image: ImageInput) -> BatchRequest:
        """Queue ``image`` for the next batch and return at once; :meth:`wait` gives the result."""
        request = BatchRequest(engine, image)
        with self._cond:
            if self._stop:
                raise RuntimeError("batcher stopped")
            self._pending.append(request)
            self._cond.notify()
        return request

    @staticmethod
    def wait(request: BatchRequest) -> DetectionResult:
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None  # noqa: S101
        return request.result

    def detect(self, engine: Engine, image: ImageInput) -> DetectionResult:
        return self.wait(self.submit(engine, image))

    def _take(self) -> list[BatchRequest]:
        with self._cond:
            while not self._pending and not self._stop:
                self._cond.wait()
            if not self._pending:
                return []
            if self.max_wait_s > 0:
                want = min(self.max_batch, max(1, self.expected()))
                until = time.perf_counter() + self.max_wait_s
                while len(self._pending) < want and not self._stop:
                    left = until - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            first = self._pending.popleft()
            batch = [first]
            # one engine and one image shape per call (a recipe switch may put two in the queue)
            rest: deque[BatchRequest] = deque()
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
            t_taken = time.perf_counter()
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
            t_done = time.perf_counter()
            for request in batch:
                request.t_taken, request.t_done, request.batch = t_taken, t_done, len(batch)
                request.done.set()
            if self.on_done is not None:
                self.on_done()

    @property
    def name(self) -> str:
        return self._thread.name

    def close(self, timeout_s: float = 1.0) -> bool:
        """Stop taking batches; False: a batch is still in the engine after ``timeout_s`` (a
        hung engine) and the thread is left behind rather than hanging the station's stop."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
