"""``python -m tools.bench ARGS``: the bench from a checkout that is not pip-installed (a GPU
host without a package index), where the ``linecheck bench`` entry point is not registered."""

from __future__ import annotations

import argparse
import sys

from tools.bench.args import add_bench_arguments
from tools.bench.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description="linecheck bench from a checkout")
    add_bench_arguments(parser)
    sys.exit(main(parser.parse_args()))
