#!/usr/bin/env bash
# linecheck container entrypoint: validate the config, build the TensorRT engines for THIS
# machine's GPU (engines are GPU-, driver- and TensorRT-version specific, so never baked into
# the image), then exec the station so it receives the container's signals directly.
#
#   (no arguments) | run [ARGS...]   validate, build, then `linecheck run -c $LINECHECK_CONFIG ARGS`
#   anything else                     exec'd as is (`linecheck bench ...`, `bash` for debugging)
#
# LINECHECK_CONFIG (default /etc/linecheck/station.yaml), LINECHECK_SKIP_BUILD=1 to start
# without building (engines already in the state volume, or an ONNX Runtime station).
set -euo pipefail

config=${LINECHECK_CONFIG:-/etc/linecheck/station.yaml}

if [[ $# -gt 0 && $1 != run ]]; then
    exec "$@"
fi
if [[ $# -gt 0 ]]; then shift; fi

if [[ ! -f $config ]]; then
    echo "linecheck: no config at $config; mount the station's /etc/linecheck" \
        "(an example is in /etc/linecheck/station.example.yaml)" >&2
    exit 64
fi

linecheck validate "$config"
if [[ ${LINECHECK_SKIP_BUILD:-0} != 1 ]]; then
    # unchanged recipes reuse the engines cached in /var/lib/linecheck (a volume)
    linecheck build -c "$config"
fi
exec linecheck run -c "$config" "$@"
