#!/usr/bin/env bash
# Run a command; if it is still running after SECONDS, dump every thread's Python stack
# (py-spy) twice, then stop it. For a run that hangs where no debugger can attach.
#   tools/gpu/stuck_probe.sh SECONDS CMD...
set -uo pipefail
wait_s=$1
shift
spy=$(command -v py-spy || ls /tmp/site/bin/py-spy 2>/dev/null || true)
"$@" &
pid=$!
for _ in $(seq "$wait_s"); do
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 1
done
echo "== still running after ${wait_s}s: stacks"
if [ -n "$spy" ]; then "$spy" dump --pid "$pid"; sleep 2; "$spy" dump --pid "$pid"; fi
kill "$pid"
wait "$pid"
