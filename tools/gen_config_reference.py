"""Write docs/configuration.md from the pydantic models that parse station and recipe files.

The page is generated so that it cannot drift from the code: every key, type, default and
bound comes from the models themselves, and the one-line explanations come from each field's
``description`` or, where it has none, from the comment on or just above the field in the
source. ``tests/docs/test_config_reference.py`` fails when the committed page differs from
what this script writes; run ``python tools/gen_config_reference.py`` after changing a model.

This is a development tool, kept outside the runtime packages on purpose.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "configuration.md"


# Notes for fields whose model carries no description (they win over a source comment), keyed by
# (model class name, field name). A note for a field that no longer exists fails the test
# (see ``stale_notes``), so this table cannot drift either.
NOTES: dict[tuple[str, str], str] = {
    ("StationSection", "queue_size"): "parts that may wait between a camera's acquisition and inference threads",
    ("StationSection", "status_interval_s"): "how often the status line is printed",
    ("RecipesSection", "dir"): "folder of recipe files (one YAML per product), relative to this file",
    ("RecipesSection", "warm_max"): "prepared recipes kept loaded for fast switching (least recently used goes first)",
    ("CameraConfig", "id"): "name used in logs, HMI, OPC UA and results",
    ("CameraConfig", "options"): "the kind's own options: see the `cameras[].options` sections below",
    ("CameraConfig", "fetch_timeout_ms"): "a fetch that waits longer becomes a camera error",
    ("EngineOptions", "backend"): "see gpu-tensorrt.md",
    ("EngineOptions", "fp16"): "run the network in fp16 on the GPU",
    ("EngineOptions", "engine_cache_dir"): "TensorRT engine cache",
    ("EngineOptions", "max_batch"): "frames of several cameras per engine call",
    ("PlcSection", "opcua_client"): "see the `plc.opcua_client:` section below",
    ("PlcSection", "modbus_client"): "linecheck writes to the PLC's registers (see plc.md)",
    ("PlcSection", "modbus_server"): "the PLC polls linecheck's registers (see plc.md); null: off",
    ("StationConfig", "opcua_server"): "see the `opcua_server:` section below; absent: no OPC UA server",
    ("StationConfig", "uplink"): "see the `uplink:` section below and mqtt-uplink.md; absent: no MQTT uplink",
    ("StorageSection", "dir"): "result log (SQLite), journal and NG images",
    ("StorageSection", "archive_max_images"): "newest NG images kept",
    ("StorageSection", "log_queue_size"): "verdicts waiting for the result log's writer; overflow is counted and alarmed, the journal keeps them",
    ("HmiSection", "users"): "name → {password_hash, role}; role viewer, operator or admin; hash from `python -m line.passwords`",
    ("HmiSection", "live_fps"): "live image rate per camera",
    ("Recipe", "id"): "unique; used in logs, HMI, OPC UA",
    ("Recipe", "code"): "what the PLC writes into recipe_select",
    ("Recipe", "classes"): "class names in the model's output order",
    ("Recipe", "thresholds"): "minimum confidence per class name; `default` for the others",
    ("Recipe", "roi"): "rectangles [x, y, w, h]; a detection counts when its box centre is inside one; null: the whole frame",
    ("Recipe", "ignore"): "rectangles [x, y, w, h] whose detections never count",
    ("Recipe", "reject"): "rules in order; the first that matches decides the bin",
    ("Recipe", "camera"): "settings applied to the camera when this recipe becomes active",
    ("Recipe", "cycle_budget_ms"): "frame ready → verdict; a part not judged by then gets the fail-safe verdict",
    ("Recipe", "fail_safe"): "what a part gets when it cannot be judged in time: reject (result code 2) or hold (3)",
    ("ModelConfig", "onnx"): "the model file, relative to the recipe file",
    ("ModelConfig", "layout"): "yolov5 [B, N, 5+C] | yolov8 [B, 4+C, N] | end2end [B, K, 6]",
    ("ModelConfig", "precision"): "for TensorRT engines",
    ("ModelConfig", "calibration"): "folder of images for INT8 calibration",
    ("RejectRule", "bin"): "reject bin; bit bin-1 of reject_mask",
    ("RejectRule", "min_area_px"): "smaller detections do not count for this rule",
    ("RejectRule", "min_count"): "detections needed for the rule to match",
    ("NmsConfig", "iou"): "a box is suppressed when its IoU with a better one is above this",
    ("CameraSettings", "trigger_mode"): "free_run: TriggerMode Off; software: linecheck fires TriggerSoftware; hardware: TriggerMode On with trigger_source",
}


def stale_notes() -> list[tuple[str, str]]:
    """Entries of NOTES that name a field no documented model has."""
    fields: set[tuple[str, str]] = set()

    def walk(model: type[BaseModel]) -> None:
        for klass in model.__mro__:
            if isinstance(klass, type) and issubclass(klass, BaseModel):
                fields.update((klass.__name__, name) for name in model.model_fields)
        for field in model.model_fields.values():
            child = _nested_model(field.annotation)
            if child is not None:
                walk(child)

    for _, _, model in _sections():
        walk(model)
    return [key for key in NOTES if key not in fields]


def _sections() -> list[tuple[str, str, type[BaseModel]]]:
    """(heading anchor key, title, model) of every top-level page section, in page order."""
    from camera.source import source_class
    from line.app.config import StationConfig
    from line.mes.config import OpcUaServerConfig
    from line.recipes.model import Recipe
    from line.uplink.config import UplinkConfig
    from plc.config import OpcUaClientConfig

    sections: list[tuple[str, str, type[BaseModel]]] = [
        ("station", "Station file (`configs/*.yaml`)", StationConfig),
        ("opcua_server", "`opcua_server:` (OPC UA server for MES, station file)", OpcUaServerConfig),
        ("plc.opcua_client", "`plc.opcua_client:` (verdicts to a PLC's OPC UA server, station file)", OpcUaClientConfig),
        ("uplink", "`uplink:` (plant MQTT broker, station file; see mqtt-uplink.md)", UplinkConfig),
    ]
    for kind in ("synthetic", "replay", "genicam", "aravis"):
        options = source_class(kind).Options
        sections.append((f"cameras[].options ({kind})", f"`cameras[].options` for `kind: {kind}`", options))
    sections.append(("recipe", "Recipe file (`recipes/*.yaml`)", Recipe))
    return sections


def _field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment on its line, or the comment block just above it, per class in the MRO."""
    comments: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        line_comment: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                line_comment[token.start[0]] = token.string.lstrip("#").strip()
        lines = source.splitlines()
        class_node = ast.parse(source).body[0]
        assert isinstance(class_node, ast.ClassDef)  # noqa: S101
        for node in class_node.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            trailing = line_comment.get(node.end_lineno or node.lineno)
            if trailing:
                comments[node.target.id] = trailing
                continue
            above: list[str] = []
            row = node.lineno - 1
            while row >= 1 and lines[row - 1].strip().startswith("#"):
                above.insert(0, line_comment.get(row, ""))
                row -= 1
            if above:
                comments[node.target.id] = " ".join(part for part in above if part)
    return comments


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " \\| ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Path": "path"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '`""`'
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value}`"


def _bounds(field: FieldInfo) -> str:
    parts: list[str] = []
    for item in field.metadata:
        if isinstance(item, Ge):
            parts.append(f"≥ {item.ge}")
        elif isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Le):
            parts.append(f"≤ {item.le}")
        elif isinstance(item, Lt):
            parts.append(f"< {item.lt}")
        elif isinstance(item, MinLen):
            parts.append(f"at least {item.min_length} item(s)" if item.min_length != 1 else "not empty")
        elif isinstance(item, MaxLen):
            parts.append(f"at most {item.max_length}")
        elif getattr(item, "pattern", None):
            parts.append(f"pattern `{item.pattern}`")
    return ", ".join(parts)


def _first_sentence(text: str) -> str:
    """What a key is for, without the measurements that justify its default (those belong in
    docs/benchmarks/): the text up to the first full stop that ends a sentence."""
    match = re.search(r"(?<=[^.\s][.])\s+(?=[A-Z(])", text)
    return text[: match.start()] if match else text


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds directly, in an optional, or as list items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg) if arg is not Ellipsis else None
        if found is not None:
            return found
    return None


def _note(model: type[BaseModel], name: str) -> str:
    for klass in model.__mro__:
        note = NOTES.get((klass.__name__, name))
        if note is not None:
            return note
    return ""


def _rows(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    comments = _field_comments(model)
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        child = _nested_model(annotation)
        is_list = typing.get_origin(annotation) is tuple or any(
            typing.get_origin(a) is tuple for a in typing.get_args(annotation)
        )
        note = field.description or _note(model, name) or comments.get(name, "")
        if child is not None and child.__doc__ and not note:
            note = " ".join(child.__doc__.split())
        note = _first_sentence(note).replace("``", "`").replace("|", "\\|")
        kind = "list of sections" if child is not None and is_list else _type_name(annotation)
        out.append(f"| `{key}` | {kind} | {_default(field)} | {_bounds(field)} | {note} |")
        if child is not None:
            nested.append((f"{key}[]." if is_list else f"{key}.", child))
    for child_prefix, child in nested:
        _rows(child, child_prefix, out)


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by tools/gen_config_reference.py from the pydantic models; do not edit by hand. -->",
        "",
        "Every key of the station file and the recipe file, with its type, default and bounds, as",
        "the models in `line/app/config.py`, `line/recipes/model.py`, `camera/`, `inference/config.py`",
        "and `plc/` define them. Unknown keys are refused, and every model is frozen once read.",
        "`linecheck validate FILE...` checks files against exactly these rules and prints each",
        "problem as `file: field.path: reason`. Relative paths resolve against the file they are in.",
        "",
        "For what the settings mean in practice, see [cameras.md](cameras.md), [plc.md](plc.md),",
        "[opcua-mes.md](opcua-mes.md) and [architecture.md](architecture.md).",
        "",
    ]
    for _, title, model in _sections():
        lines += [f"## {title}", ""]
        if model.__doc__ and not model.__doc__.startswith(model.__name__ + "("):
            lines += [" ".join(inspect.cleandoc(model.__doc__).split()), ""]
        lines += ["| key | type | default | bounds | notes |", "| --- | --- | --- | --- | --- |"]
        _rows(model, "", lines)
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from the models instead of writing it")
    parser.add_argument("--output", type=Path, default=PAGE, help="where the page goes (default: docs/configuration.md)")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} differs from the models; run: python tools/gen_config_reference.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
