"""Test verdicts and their rows in the station's SQLite result log (``line.results.log`` schema).
The server reads them back through ``line.results.reader.ResultLogReader`` (the real reader)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from line.results.log import connect
from plc.vocabulary import ResultCode, VerdictMessage

CLASSES = ("scratch", "dent", "missing_cap")


class FakeLogWriter:
    """Writes rows straight into the station's schema (``line.results.log.connect`` creates it),
    so a test knows exactly what is committed before it publishes the verdicts."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        self._rng = random.Random(7)
        self._seq = 0

    def make(
        self, t_ns: int | None = None, recipe: tuple[str, int] = ("cap-a", 3)
    ) -> tuple[VerdictMessage, str]:
        """A verdict with random defects and the defects_json the station would log for it."""
        self._seq += 1
        n = self._rng.choice((0, 0, 0, 1, 2, 3))
        defects = [
            {
                "class": self._rng.choice(CLASSES),
                "confidence": round(self._rng.uniform(0.5, 1.0), 3),
                "box": [10 * i, 10, 10 * i + 30, 50],
            }
            for i in range(n)
        ]
        counts: dict[str, int] = {}
        for d in defects:
            counts[str(d["class"])] = counts.get(str(d["class"]), 0) + 1
        code = ResultCode.PASS if n == 0 else ResultCode.REJECT
        if self._seq % 17 == 0:
            code = ResultCode.FAIL_SAFE_REJECT
        msg = VerdictMessage(
            result_id=f"r-{self._seq:06d}-{self._rng.randrange(1 << 30):08x}",
            camera_id="cam0",
            part_id=1000 + self._seq,
            recipe_id=recipe[0],
            recipe_code=recipe[1],
            result_code=code,
            reject_mask=(1 << (n % 3)) if code == ResultCode.REJECT else 0,
            defect_count=n,
            processing_us=1000 + self._seq % 5000,
            deadline=time.perf_counter() + 1.0,
            reason="timeout" if code == ResultCode.FAIL_SAFE_REJECT else "",
            defects=tuple(sorted(counts.items())),
            image_ref=f"ng/{self._seq}.png" if n else "",
            timestamp_ns=t_ns if t_ns is not None else time.time_ns(),
        )
        return msg, json.dumps(defects)

    def write(self, msg: VerdictMessage, defects_json: str) -> None:
        self.write_many([(msg, defects_json)])

    def write_many(self, items: list[tuple[VerdictMessage, str]]) -> None:
        self._db.executemany(
            "INSERT INTO results (result_id, camera_id, part_id, recipe_id, recipe_code, result_code, reason,"
            " reject_mask, defect_count, defects_json, processing_us, t_verdict_ns, image_ref, delivered)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
            [
                (
                    m.result_id,
                    m.camera_id,
                    m.part_id,
                    m.recipe_id,
                    m.recipe_code,
                    int(m.result_code),
                    m.reason,
                    m.reject_mask,
                    m.defect_count,
                    dj,
                    m.processing_us,
                    m.timestamp_ns,
                    m.image_ref,
                )
                for m, dj in items
            ],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()
