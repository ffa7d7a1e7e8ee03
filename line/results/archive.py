"""NG image archive on disk with retention by count.

Encoding happens on the writer thread (never on the hot path). A full disk raises an alarm
and the station goes on: verdicts are still logged, only the picture is missing.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ImageArchive:
    def __init__(self, root: Path, max_images: int, fmt: str = "png") -> None:
        self.root = root
        self.max_images = max_images
        self.fmt = fmt
        self.failures = 0
        root.mkdir(parents=True, exist_ok=True)
        existing = sorted(root.glob(f"*.{fmt}"), key=lambda p: p.stat().st_mtime)
        self._files: deque[Path] = deque(existing)

    def save(self, name: str, image: np.ndarray) -> str:
        """Write ``image``; returns the reference (file name relative to root) or raises OSError."""
        ref = _SAFE.sub("_", name) + "." + self.fmt
        path = self.root / ref
        ok, encoded = cv2.imencode("." + self.fmt, image)
        if not ok:
            raise OSError(f"could not encode image {ref}")
        tmp = path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as fh:
                fh.write(encoded.tobytes())
            os.replace(tmp, path)
        except OSError:  # disk full: a partial file would keep the space and never be retired
            tmp.unlink(missing_ok=True)
            raise
        self._files.append(path)
        while len(self._files) > self.max_images:
            old = self._files.popleft()
            old.unlink(missing_ok=True)
        return ref

    def resolve(self, ref: str) -> Path:
        """Map a reference from a request to a file inside the archive, refusing traversal."""
        if not ref or _SAFE.search(ref) or ref.startswith("."):
            raise ValueError(f"invalid image reference {ref!r}")
        path = (self.root / ref).resolve()
        if path.parent != self.root.resolve():
            raise ValueError(f"invalid image reference {ref!r}")
        return path
