"""``linecheck cameras``: the cameras this computer reaches, through GenTL and Aravis.

A table for a person, ``--json`` for a script. A backend that is not installed (or has no
producer to ask) is a problem line, not a failure: a site with only GigE Vision cameras has no
GenTL producer. The exit status is 1 only when no backend could be asked at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

BACKENDS = ("genicam", "aravis")


def add_cameras_command(sub: Any) -> None:
    """Register the subcommand on the CLI's subparsers."""
    parser = sub.add_parser("cameras", help="list the GenTL and GigE Vision cameras this computer reaches")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument(
        "--backend", choices=("all", *BACKENDS), default="all",
        help="ask only GenTL producers through harvesters (genicam) or only Aravis (aravis)",
    )  # fmt: skip
    parser.add_argument(
        "--cti", action="append", type=Path, default=None, metavar="PATH",
        help="GenTL producer to ask (repeatable); default: every .cti on GENICAM_GENTL64_PATH",
    )  # fmt: skip
    parser.set_defaults(func=run_cameras)


def run_cameras(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from camera.discovery import DiscoveredCamera, DiscoveryUnavailable, discover_aravis, discover_gentl
    from camera.gentl import producers_from_env

    wanted = BACKENDS if args.backend == "all" else (args.backend,)
    cameras: list[DiscoveredCamera] = []
    problems: list[str] = []
    asked = 0
    for backend in wanted:
        try:
            if backend == "genicam":
                cameras += discover_gentl(list(args.cti) if args.cti else producers_from_env(os.environ))
            else:
                cameras += discover_aravis()
            asked += 1
        except DiscoveryUnavailable as exc:
            problems.append(f"{backend}: {exc}")
    if args.json:
        print(json.dumps({"cameras": [c.as_dict() for c in cameras], "problems": problems}, indent=2), file=out)
    else:
        print(format_table(cameras), file=out)
        for problem in problems:
            print(problem, file=sys.stderr)
    return 0 if asked else 1


def format_table(cameras: list[Any]) -> str:
    if not cameras:
        return "no cameras found"
    header = ("BACKEND", "VENDOR", "MODEL", "SERIAL", "ADDRESS", "PIXEL FORMATS")
    rows = [
        (c.backend, c.vendor, c.model, c.serial_number, c.address, "?" if c.pixel_formats is None else " ".join(c.pixel_formats))
        for c in cameras
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    return "\n".join("  ".join(f"{v:<{w}}" for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in (header, *rows))
