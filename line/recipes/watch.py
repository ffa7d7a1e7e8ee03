"""Watch the recipes folder and reload the book when a file changes.

Polling modification times once a second in its own thread is plenty for files that people
edit by hand, needs no inotify (works on network mounts and in containers), and never touches
the hot path. Before any file is read, every recipe file's size is checked: one larger than
``max_file_bytes`` stops the reload (the book stays as it was, ``last_error`` names the file),
because parsing a multi-megabyte YAML file in the station's process took the interpreter from
the station's threads for tens of seconds. A change reloads the whole book (``RecipeBook.refresh``): a bad file is listed
as invalid with its problems and never becomes active; prepared copies of changed recipes
are dropped so the next switch prepares the new version; the active recipe keeps running as
it was prepared until the next switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from line.recipes.book import RecipeBook

log = logging.getLogger(__name__)

Fingerprint = dict[str, tuple[int, int]]  # path -> (mtime_ns, size)
ChangeListener = Callable[[dict[str, list[str]]], None]

MAX_RECIPE_FILE_BYTES = 256 * 1024  # a real recipe is a few KiB


def fingerprint(directory: Path, extra: list[Path] | None = None) -> Fingerprint:
    """mtime and size of every recipe file (and of the model files they name)."""
    out: Fingerprint = {}
    for path in [*sorted(directory.glob("*.yaml")), *(extra or [])]:
        try:
            st = path.stat()
        except OSError:
            continue
        out[str(path)] = (st.st_mtime_ns, st.st_size)
    return out


class RecipeWatcher:
    def __init__(self, book: RecipeBook, interval_s: float = 1.0, on_change: ChangeListener | None = None,
                 max_file_bytes: int = MAX_RECIPE_FILE_BYTES) -> None:  # fmt: skip
        self.book = book
        self.interval_s = interval_s
        self.max_file_bytes = max_file_bytes
        self.listeners: list[ChangeListener] = [on_change] if on_change else []
        self.reloads = 0
        self.last_changes: dict[str, list[str]] = {}
        self.last_error = ""
        self._stop = threading.Event()
        self._seen = self._fingerprint()
        self._thread = threading.Thread(target=self._run, name="recipe-watch", daemon=True)

    def _fingerprint(self) -> Fingerprint:
        models = [r.model.onnx for r in self.book.recipes.values()]
        return fingerprint(self.book.directory, models)

    def start(self) -> None:
        self._thread.start()

    def check(self) -> bool:
        """One poll; True if the folder changed and the book was reloaded."""
        now = self._fingerprint()
        if now == self._seen:
            return False
        oversized = sorted(path for path, (_, size) in now.items()
                           if path.endswith(".yaml") and size > self.max_file_bytes)  # fmt: skip
        if oversized:  # refused before reading: the next change of the folder is checked again
            error = f"recipe files over {self.max_file_bytes} bytes, not read: {oversized}"
            if error != self.last_error:
                log.warning("recipe reload refused: %s", error)
            self.last_error = error
            self._seen = now
            return False
        try:
            changes = self.book.refresh()
            self.last_error = ""
        except Exception as exc:  # e.g. the folder vanished: keep the book as it was, retry next time
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("recipe reload failed: %s", self.last_error)
            return False
        # what we reloaded from, not what is there now: a file saved during the reload is seen
        # at the next poll (new recipes' model files may cause one extra, harmless reload)
        self._seen = now
        self.reloads += 1
        self.last_changes = changes
        log.info("recipes reloaded: %s; invalid: %s", changes, sorted(self.book.invalid))
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:
                log.exception("recipe change listener failed")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def close(self, timeout_s: float | None = None) -> bool:
        """Stop polling; False: a reload still runs after ``timeout_s`` (an engine build for a
        changed recipe) and the thread is left behind."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()
