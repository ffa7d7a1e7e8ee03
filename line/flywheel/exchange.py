"""The reviewed set out (YOLO, Label Studio tasks with the model's pre-annotations) and
corrected labels back in (Label Studio's JSON export, or the exported zip's YOLO label files).

Labels of a capture (what training should learn): after an imported correction, exactly the
imported boxes; after a station review, the model's boxes unless the reject was marked false
or the pass good (then none), plus any missed defects QA drew. Unreviewed captures are not
exported: the export is the evidence QA stood behind.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from line.errors import ConfigError, Problem
from line.flywheel.store import Capture, FlywheelStore

LS_FROM, LS_TO = "label", "image"  # the Label Studio labeling config's control and object names


def labels_of(capture: Capture) -> list[dict[str, Any]]:
    review = capture.review
    if review is None:
        return []
    boxes = [{"class": b["class"], "box": [float(v) for v in b["box"]]} for b in review.get("boxes", [])]
    if review.get("source") == "import":
        return boxes
    if review["decision"] in ("false", "good"):
        return []
    return [{"class": d["class"], "box": [float(v) for v in d["box"]]} for d in capture.detections] + boxes


def _yolo_lines(labels: list[dict[str, Any]], classes: list[str], w: int, h: int) -> str:
    lines = []
    for lab in labels:
        if lab["class"] not in classes:
            continue
        x1, y1, x2, y2 = lab["box"]
        lines.append(f"{classes.index(lab['class'])} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def _rect(det: dict[str, Any], w: int, h: int, rid: str) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in det["box"])
    return {"id": rid, "from_name": LS_FROM, "to_name": LS_TO, "type": "rectanglelabels", "original_width": w,
            "original_height": h, "value": {"x": 100 * x1 / w, "y": 100 * y1 / h, "width": 100 * (x2 - x1) / w,
                                            "height": 100 * (y2 - y1) / h, "rotation": 0, "rectanglelabels": [det["class"]]},
            **({"score": det["confidence"]} if "confidence" in det else {})}  # fmt: skip


def export_zip(store: FlywheelStore, captures: Iterable[Capture], classes: list[str]) -> bytes:
    """One zip: ``images/``, ``labels/`` and ``data.yaml`` (YOLO), ``label_studio/tasks.json``
    (tasks with predictions from the model, annotations from the reviews) and
    ``label_studio/config.xml`` (a labeling config with the recipe's classes)."""
    buf = io.BytesIO()
    tasks = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for c in captures:
            if c.review is None:
                continue
            stem = Path(c.image).stem
            zf.write(store.images / c.image, f"images/{c.image}")
            labels = labels_of(c)
            zf.writestr(f"labels/{stem}.txt", _yolo_lines(labels, classes, c.width, c.height))
            sha = str(c.provenance.get("model_sha256", ""))
            tasks.append({
                "data": {"image": f"images/{c.image}"},
                "meta": {"capture_id": c.id, "recipe_id": c.recipe_id, "verdict": c.verdict, "review": c.review["decision"],
                         "reviewed_by": c.review["user"], "provenance": c.provenance},
                "predictions": [{"model_version": sha[:12],
                                 "result": [_rect(d, c.width, c.height, f"p{i}") for i, d in enumerate(c.detections)]}],
                "annotations": [{"result": [_rect(lab, c.width, c.height, f"a{i}") for i, lab in enumerate(labels)]}],
            })  # fmt: skip
        names = "".join(f"  {i}: {n}\n" for i, n in enumerate(classes))
        zf.writestr("data.yaml", f"path: .\ntrain: images\nval: images\nnames:\n{names}")
        zf.writestr("label_studio/tasks.json", json.dumps(tasks, indent=1))
        labels_xml = "".join(f'    <Label value="{n}"/>\n' for n in classes)
        zf.writestr("label_studio/config.xml", f'<View>\n  <Image name="{LS_TO}" value="$image"/>\n'
                                               f'  <RectangleLabels name="{LS_FROM}" toName="{LS_TO}">\n{labels_xml}'
                                               "  </RectangleLabels>\n</View>\n")  # fmt: skip
    return buf.getvalue()


def import_label_studio(store: FlywheelStore, data: bytes, user: str, classes: list[str]) -> dict[str, int]:
    """Label Studio's JSON export of the exported tasks: each task's latest annotation becomes
    the capture's labels (a review from source ``import``)."""
    try:
        tasks = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("import", "", f"not JSON: {exc}")]) from None
    if not isinstance(tasks, list):
        raise ConfigError([Problem("import", "", "expected a list of tasks (Label Studio's JSON export)")])
    problems, imported = [], 0
    plans: list[tuple[int, list[dict[str, Any]]]] = []
    for n, task in enumerate(tasks):
        where = f"task {n + 1}"
        meta = task.get("meta") if isinstance(task, dict) else None
        cid = meta.get("capture_id") if isinstance(meta, dict) else None
        capture = store.capture(cid) if isinstance(cid, int) else None
        if capture is None:
            problems.append(Problem("import", where, f"no capture {cid!r} on this station (meta.capture_id)"))
            continue
        annotations = [a for a in task.get("annotations", []) if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            continue
        boxes = []
        for r in annotations[-1].get("result", []):
            v = r.get("value", {}) if isinstance(r, dict) else {}
            names = v.get("rectanglelabels") or []
            if not names or names[0] not in classes:
                problems.append(Problem("import", where, f"unknown class {names[:1]}; classes are {classes}"))
                continue
            w, h = capture.width, capture.height
            x1, y1 = float(v["x"]) * w / 100, float(v["y"]) * h / 100
            boxes.append({"class": names[0], "box": [round(x1, 1), round(y1, 1), round(x1 + float(v["width"]) * w / 100, 1),
                                                      round(y1 + float(v["height"]) * h / 100, 1)]})  # fmt: skip
        plans.append((capture.id, boxes))
    if problems:  # all or nothing: a half-imported batch is worse than a refused one
        raise ConfigError(problems)
    for cid, boxes in plans:
        store.add_review(cid, user, "confirm" if boxes else "good", boxes, source="import")
        imported += 1
    return {"imported": imported, "tasks": len(tasks)}


def import_yolo(store: FlywheelStore, data: bytes, user: str, classes: list[str]) -> dict[str, int]:
    """A zip with ``labels/<capture>.txt`` files (YOLO: ``class cx cy w h`` normalised), as
    exported and corrected: each file becomes its capture's labels. All files or none."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ConfigError([Problem("import", "", f"not a zip file: {exc}")]) from None
    problems: list[Problem] = []
    plans: list[tuple[int, list[dict[str, Any]]]] = []
    names = [n for n in zf.namelist() if n.startswith("labels/") and n.endswith(".txt")]
    if not names:
        raise ConfigError([Problem("import", "", "no labels/*.txt in the zip")])
    for name in names:
        capture = store.capture_by_image(Path(name).stem + ".png")
        if capture is None:
            problems.append(Problem("import", name, "no capture of that name on this station"))
            continue
        boxes = []
        for n, line in enumerate(zf.read(name).decode("utf-8", "replace").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                cls, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
                if len(fields) != 5 or not 0 <= cls < len(classes):
                    raise ValueError
            except ValueError:
                problems.append(Problem("import", f"{name} line {n}", f"expected 'class cx cy w h' with class 0..{len(classes) - 1}"))
                continue
            W, H = capture.width, capture.height  # noqa: N806
            boxes.append({"class": classes[cls], "box": [round((cx - w / 2) * W, 1), round((cy - h / 2) * H, 1),
                                                          round((cx + w / 2) * W, 1), round((cy + h / 2) * H, 1)]})  # fmt: skip
        plans.append((capture.id, boxes))
    if problems:
        raise ConfigError(problems)
    for cid, boxes in plans:
        store.add_review(cid, user, "confirm" if boxes else "good", boxes, source="import")
    return {"imported": len(plans), "tasks": len(names)}


def golden_set(folder: Path, limit: int = 500) -> list[tuple[Path, bool]]:
    """A labelled folder in the export's YOLO layout (``images/*.png``, ``labels/*.txt``): each
    picture with whether it shows a defect (a label file with at least one box). A picture
    without a label file is not part of the set."""
    found = []
    for image in sorted((folder / "images").glob("*.png"))[:limit]:
        label = folder / "labels" / f"{image.stem}.txt"
        if label.is_file():
            found.append((image, any(line.split() for line in label.read_text().splitlines())))
    return found
