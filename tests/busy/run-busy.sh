#!/usr/bin/env bash
# Run a command (a pytest run) while stress-ng keeps the machine's cores busy, as a loaded
# production PC or a shared CI runner would; stress-ng is stopped however the command ends.
#   tests/busy/run-busy.sh .venv/bin/python -m pytest -q tests/line/test_demo_end_to_end.py
# BUSY_CPUS (default 2) sets how many stress-ng CPU workers run.
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]   (e.g. .venv/bin/python -m pytest -q tests/...)" >&2
    exit 2
fi
if ! command -v stress-ng >/dev/null; then
    echo "stress-ng is not installed (bash tests/setup/install-system-deps.sh)" >&2
    exit 2
fi
stress-ng --cpu "${BUSY_CPUS:-2}" --timeout 0 --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null; wait "$stress_pid" 2>/dev/null || true' EXIT
sleep 1  # the workers are spinning before the command starts
echo "stress-ng --cpu ${BUSY_CPUS:-2} running (pid $stress_pid)" >&2
"$@"
