"""One owned worker for requests from the PLC and the HMI (recipe select, commands).

A recipe switch prepares an engine (seconds); it must not run on a protocol thread, and a
thread per request would leave threads nobody joins. One small bounded queue and one thread,
started and stopped with the station: a burst beyond the queue is refused and counted, and a
stop joins the thread within a bound (a request still running past it is logged and left).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger(__name__)


class RequestWorker:
    def __init__(self, name: str = "station-requests", maxsize: int = 8) -> None:
        self.name = name
        self._queue: queue.Queue[tuple[Callable[[], object], Future[object]] | None] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self.refused = 0
        self.failed = 0
        self.done = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def is_current_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def submit(self, job: Callable[[], object]) -> Future[object] | None:
        """Queue ``job``; its future, or None (counted, logged) when the queue is full or the
        worker is not running."""
        if self._thread is None or not self._thread.is_alive():
            self.refused += 1
            log.warning("%s: request refused, the worker is not running", self.name)
            return None
        future: Future[object] = Future()
        try:
            self._queue.put_nowait((job, future))
        except queue.Full:
            self.refused += 1
            log.warning("%s: request refused, %d requests already waiting", self.name, self._queue.maxsize)
            return None
        return future

    def _run(self) -> None:
        while (entry := self._queue.get()) is not None:
            job, future = entry
            try:
                future.set_result(job())
            except Exception as exc:  # one failing request must not end the worker
                self.failed += 1
                future.set_exception(exc)
                log.exception("%s: request failed", self.name)
            finally:
                self.done += 1
                self._queue.task_done()

    def close(self, timeout_s: float = 2.0) -> bool:
        """Drop what has not started, finish the running request within ``timeout_s``; True
        when the thread ended."""
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        while True:
            try:
                dropped = self._queue.get_nowait()
                if dropped is not None:
                    dropped[1].cancel()
                self._queue.task_done()
                self.refused += 1
            except queue.Empty:
                break
        self._queue.put(None)  # room: just emptied, and nothing else puts once _thread is None
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("%s: a request still running after %.1f s is left behind", self.name, timeout_s)
            return False
        return True

    def idle(self, timeout_s: float) -> bool:
        """Wait until every queued request ran (tests, start-up); True when idle."""
        end = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks
