"""Station latency on the demo line with and without a candidate in shadow (issue 26's proof:
p99 within the recipe's budget with the shadow on, production verdicts unchanged).

Runs the demo recipe on the synthetic camera (seeded: both runs see the same frames) twice for
``--parts`` parts: without a shadow, then with a weaker copy of the demo model in shadow (its
last layers' weights shrunk and jittered). Prints one JSON line. A development tool, kept out of
the runtime packages; ``python tools/shadow_p99.py --parts 400``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camera.synthetic import SyntheticSource  # noqa: E402
from inference.config import EngineOptions  # noqa: E402
from inference.engine import open_engine  # noqa: E402
from line.flywheel.service import Flywheel  # noqa: E402
from line.flywheel.shadow import candidate_engine, shadow_engine_options  # noqa: E402
from line.loop.station import Station  # noqa: E402
from line.recipes.book import RecipeBook  # noqa: E402
from line.recipes.model import Recipe  # noqa: E402
from line.results.archive import ImageArchive  # noqa: E402
from line.results.log import ResultLog  # noqa: E402
from plc.vocabulary import Delivery, ResultSink, VerdictMessage  # noqa: E402
from tests.flywheel.weaker import weaker_copy  # noqa: E402

DEMO = ROOT / "line" / "demo_station" / "recipes"


class RecordingSink(ResultSink):
    """The PLC stand-in: keeps every verdict message."""

    name = "recorder"

    def __init__(self) -> None:
        self.messages: list[VerdictMessage] = []

    def publish(self, verdict: VerdictMessage) -> Delivery:
        self.messages.append(verdict)
        return Delivery(True, self.name, seq=len(self.messages), ack_time=time.perf_counter())


def run(tmp: Path, parts: int, rate_hz: float, shadow: bool, threads: int) -> dict[str, object]:
    folder = tmp / "recipes"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("demo-parts-strict.yaml"))
    options = EngineOptions(intra_op_threads=threads)

    def factory(recipe: Recipe):  # noqa: ANN202
        return open_engine(recipe.detector_spec(), options)

    book = RecipeBook(folder, factory, warm_shape=(1024, 1280, "Mono8"))
    assert book.switch("demo-parts", "startup").ok
    camera = SyntheticSource("cam1", SyntheticSource.Options(rate_hz=rate_hz, defect_rate=0.3, seed=5, max_parts=parts))
    sink = RecordingSink()
    station = Station("demo", book, [camera], [sink], ResultLog(tmp / "state" / "results.db", ImageArchive(tmp / "state" / "ng", 50)))
    shadow_options = shadow_engine_options(options)
    fly = Flywheel(tmp / "state" / "flywheel", station, partial(candidate_engine, options=shadow_options))
    fly.attach()
    if shadow:
        fly.register_candidate("demo-parts", weaker_copy(folder / "demo" / "demo-parts.onnx", tmp / "weaker.onnx"), None, "bench")
    station.start()
    deadline = time.monotonic() + parts / rate_hz * 3 + 60
    while len(sink.messages) < parts and time.monotonic() < deadline:
        time.sleep(0.1)
    report = fly.shadow_report("demo-parts") if shadow else None
    station.stop()
    snap = station.snapshot()
    fly.close()
    verdicts = {m.part_id: int(m.result_code) for m in sink.messages if not m.reason}
    out: dict[str, object] = {"parts": len(sink.messages), "fail_safe": len(sink.messages) - len(verdicts),
                              "latency_ms": {k: round(float(v), 2) for k, v in snap["latency_ms"].items() if k != "n"},  # type: ignore[attr-defined]
                              "budget_ms": book.recipes["demo-parts"].cycle_budget_ms, "_verdicts": verdicts}  # fmt: skip
    if report:
        out["shadow"] = {k: report[k] for k in ("parts_seen", "parts_judged", "parts_skipped", "agreement",
                                                 "disagreements_by_kind", "latency_ms")}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=400)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads per engine (0: its default)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off = run(Path(tmp) / "off", args.parts, args.rate, False, args.threads)
        on = run(Path(tmp) / "on", args.parts, args.rate, True, args.threads)
    a, b = off.pop("_verdicts"), on.pop("_verdicts")
    both = a.keys() & b.keys()  # type: ignore[union-attr,attr-defined]
    same = sum(a[p] == b[p] for p in both)  # type: ignore[index]
    print(json.dumps({"without_shadow": off, "with_shadow": on, "compared_parts": len(both), "identical_verdicts": same}))


if __name__ == "__main__":
    main()
