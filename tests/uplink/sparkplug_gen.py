"""Generates line/uplink/sparkplug/sparkplug_b_pb2.py and .pyi from sparkplug_b.proto with
grpcio-tools' bundled protoc; tests/uplink/test_sparkplug.py compares the result with the
vendored files. Run ``python -m tests.uplink.sparkplug_gen`` after changing the proto."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "line" / "uplink" / "sparkplug"
HEADER = """\
# Vendored: generated from sparkplug_b.proto (Eclipse Tahu, EPL-2.0, see LICENSE-sparkplug_b) with
#   python -m grpc_tools.protoc -I line/uplink/sparkplug --python_out=DIR --pyi_out=DIR sparkplug_b.proto
# (grpcio-tools' bundled protoc; python -m tests.uplink.sparkplug_gen writes both files).
# tests/uplink/test_sparkplug.py regenerates it and compares. Do not edit.
"""


def generate() -> dict[str, str]:
    """File name -> text, header included."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{FOLDER}", f"--python_out={out}",
                        f"--pyi_out={out}", "sparkplug_b.proto"], check=True, capture_output=True)  # fmt: skip
        return {name: HEADER + (Path(out) / name).read_text() for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi")}


if __name__ == "__main__":
    for name, text in generate().items():
        (FOLDER / name).write_text(text)
