"""The flywheel's own SQLite database and picture folder: captures, reviews (append-only: the
audit trail of who said what, when), which model decided each result, shadow disagreements
and promotions.

Kept apart from the result log (line/results.py) on purpose: its schema belongs to the
station's hot path and other work; the flywheel keys its rows by the result log's
``result_id`` where it needs to refer to a part. One connection guarded by a lock: the
writer thread, the shadow thread and the HMI's requests all write little.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ns INTEGER NOT NULL,
    recipe_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    verdict TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    part_id INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    detections_json TEXT NOT NULL,
    provenance_json TEXT NOT NULL,
    image TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_recipe ON captures (recipe_id, id);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    capture_id INTEGER NOT NULL,
    t_ns INTEGER NOT NULL,
    user TEXT NOT NULL,
    decision TEXT NOT NULL,
    boxes_json TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL DEFAULT 'hmi'
);
CREATE INDEX IF NOT EXISTS reviews_capture ON reviews (capture_id, id);
CREATE TABLE IF NOT EXISTS decided_by (
    result_id TEXT PRIMARY KEY,
    recipe_id TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    t_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shadow_disagreements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ns INTEGER NOT NULL,
    recipe_id TEXT NOT NULL,
    candidate_sha256 TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    part_id INTEGER NOT NULL,
    production TEXT NOT NULL,
    candidate TEXT NOT NULL,
    classes_json TEXT NOT NULL,
    image TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS promotions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ns INTEGER NOT NULL,
    recipe_id TEXT NOT NULL,
    action TEXT NOT NULL,
    user TEXT NOT NULL,
    from_sha256 TEXT NOT NULL,
    to_sha256 TEXT NOT NULL
);
"""

DECISIONS = ("confirm", "false", "missed", "good")  # reject right | reject wrong | defect missed | pass right


@dataclass(frozen=True)
class Capture:
    id: int
    t_ns: int
    recipe_id: str
    reason: str
    verdict: str
    camera_id: str
    part_id: int
    width: int
    height: int
    detections: list[dict[str, Any]]
    provenance: dict[str, Any]
    image: str
    review: dict[str, Any] | None  # the latest review, if any

    def public(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class FlywheelStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images = folder / "captures"
        self.images.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(folder / "flywheel.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    # --- captures ---------------------------------------------------------------------------
    def add_capture(self, row: dict[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO captures (t_ns, recipe_id, reason, verdict, camera_id, part_id, width, height, detections_json,"
                " provenance_json, image, bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (row["t_ns"], row["recipe_id"], row["reason"], row["verdict"], row["camera_id"], row["part_id"], row["width"],
                 row["height"], json.dumps(row["detections"]), json.dumps(row["provenance"]), row["image"], row["bytes"]),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

    def enforce_budget(self, budget_bytes: int) -> list[str]:
        """Delete the oldest captures (rows and pictures) until the pictures fit the budget."""
        removed: list[str] = []
        with self._lock:
            total = int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM captures").fetchone()[0])
            for cid, image, size in self._db.execute("SELECT id, image, bytes FROM captures ORDER BY id").fetchall():
                if total <= budget_bytes:
                    break
                self._db.execute("DELETE FROM captures WHERE id = ?", (cid,))
                (self.images / image).unlink(missing_ok=True)
                total -= size
                removed.append(image)
        return removed

    def captures(self, *, recipe_id: str | None = None, unreviewed: bool = False, reviewed: bool = False,
                 limit: int = 50, ids: list[int] | None = None) -> list[Capture]:  # fmt: skip
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if recipe_id:
            where.append("c.recipe_id = ?")
            params.append(recipe_id)
        if unreviewed:
            where.append("NOT EXISTS (SELECT 1 FROM reviews r WHERE r.capture_id = c.id)")
        if reviewed:
            where.append("EXISTS (SELECT 1 FROM reviews r WHERE r.capture_id = c.id)")
        if ids is not None:
            where.append(f"c.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        rows = self._q(
            "SELECT c.id, c.t_ns, c.recipe_id, c.reason, c.verdict, c.camera_id, c.part_id, c.width, c.height, c.detections_json,"
            " c.provenance_json, c.image, (SELECT json_object('user', r.user, 't_ns', r.t_ns, 'decision', r.decision,"
            " 'boxes', json(r.boxes_json), 'source', r.source) FROM reviews r WHERE r.capture_id = c.id ORDER BY r.id DESC LIMIT 1)"
            f" FROM captures c WHERE {' AND '.join(where)} ORDER BY c.id {'ASC' if unreviewed else 'DESC'} LIMIT ?",
            (*params, limit),
        )  # fmt: skip
        return [Capture(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), json.loads(r[10]), r[11],
                        json.loads(r[12]) if r[12] else None) for r in rows]  # fmt: skip

    def capture(self, capture_id: int) -> Capture | None:
        found = self.captures(ids=[capture_id], limit=1)
        return found[0] if found else None

    def capture_by_image(self, image: str) -> Capture | None:
        rows = self._q("SELECT id FROM captures WHERE image = ?", (image,))
        return self.capture(int(rows[0][0])) if rows else None

    def count(self) -> dict[str, int]:
        total, size = self._q("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM captures")[0]
        reviewed = self._q("SELECT COUNT(DISTINCT capture_id) FROM reviews r JOIN captures c ON c.id = r.capture_id")[0][0]
        return {"captures": int(total), "bytes": int(size), "reviewed": int(reviewed)}

    # --- reviews ----------------------------------------------------------------------------
    def add_review(self, capture_id: int, user: str, decision: str, boxes: list[dict[str, Any]], source: str = "hmi") -> int:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {list(DECISIONS)}, got {decision!r}")
        with self._lock:
            cur = self._db.execute("INSERT INTO reviews (capture_id, t_ns, user, decision, boxes_json, source) VALUES (?,?,?,?,?,?)",
                                   (capture_id, time.time_ns(), user, decision, json.dumps(boxes), source))  # fmt: skip
            return int(cur.lastrowid or 0)

    def last_review_id(self) -> int:
        """Changes with every review: what a cached evaluation over the reviewed set is keyed by."""
        return int(self._q("SELECT COALESCE(MAX(id), 0) FROM reviews")[0][0])

    def review_history(self, capture_id: int) -> list[dict[str, Any]]:
        rows = self._q("SELECT t_ns, user, decision, boxes_json, source FROM reviews WHERE capture_id = ? ORDER BY id", (capture_id,))
        return [{"t_ns": r[0], "user": r[1], "decision": r[2], "boxes": json.loads(r[3]), "source": r[4]} for r in rows]

    # --- which model decided ----------------------------------------------------------------
    def add_decided_by(self, rows: list[tuple[str, str, str, int]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO decided_by (result_id, recipe_id, model_sha256, t_ns) VALUES (?,?,?,?)", rows)

    def decided_by(self, result_id: str) -> str | None:
        rows = self._q("SELECT model_sha256 FROM decided_by WHERE result_id = ?", (result_id,))
        return rows[0][0] if rows else None

    def decided_by_all(self) -> list[tuple[str, str, int]]:
        return [(r[0], r[1], r[2]) for r in self._q("SELECT result_id, model_sha256, t_ns FROM decided_by ORDER BY t_ns")]

    # --- shadow, promotions -----------------------------------------------------------------
    def add_disagreement(self, row: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute("INSERT INTO shadow_disagreements (t_ns, recipe_id, candidate_sha256, camera_id, part_id, production,"
                             " candidate, classes_json, image) VALUES (?,?,?,?,?,?,?,?,?)", row)  # fmt: skip

    def disagreements(self, recipe_id: str, candidate_sha: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._q("SELECT id, t_ns, camera_id, part_id, production, candidate, classes_json, image FROM shadow_disagreements"
                       " WHERE recipe_id = ? AND candidate_sha256 = ? ORDER BY id DESC LIMIT ?", (recipe_id, candidate_sha, limit))  # fmt: skip
        return [{"id": r[0], "t_ns": r[1], "camera_id": r[2], "part_id": r[3], "production": r[4], "candidate": r[5],
                 "classes": json.loads(r[6]), "image": r[7]} for r in rows]  # fmt: skip

    def add_promotion(self, recipe_id: str, action: str, user: str, from_sha: str, to_sha: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO promotions (t_ns, recipe_id, action, user, from_sha256, to_sha256) VALUES (?,?,?,?,?,?)",
                             (time.time_ns(), recipe_id, action, user, from_sha, to_sha))  # fmt: skip

    def promotions(self, recipe_id: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT t_ns, action, user, from_sha256, to_sha256 FROM promotions WHERE recipe_id = ? ORDER BY id DESC",
                       (recipe_id,))  # fmt: skip
        return [{"t_ns": r[0], "action": r[1], "user": r[2], "from": r[3], "to": r[4]} for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
