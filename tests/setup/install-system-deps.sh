#!/usr/bin/env bash
# Debian packages the test suite talks to as real peers: libmodbus' mbpoll, mosquitto (the plant
# MQTT broker), Aravis' fake GigE Vision camera and its GObject typelib (+ headers to build
# PyGObject), Chromium for the HMI, shellcheck for the deploy scripts, stress-ng for
# tests/busy/run-busy.sh. Idempotent; skips apt when everything is present.
set -euo pipefail
packages=(mbpoll mosquitto aravis-tools gir1.2-aravis-0.8 libgirepository1.0-dev libcairo2-dev pkg-config
          chromium chromium-driver shellcheck stress-ng)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
