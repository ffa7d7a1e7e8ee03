#!/usr/bin/env bash
# Install linecheck on a station host as a systemd service.
#
#   sudo deploy/install.sh [--prefix /opt/linecheck] [--extras gpu,tensorrt,genicam,opcua,hmi]
#                          [--source DIR|WHEEL|REQ] [--config station.yaml] [--no-build] [--no-start]
#   deploy/install.sh --dry-run ...     # prints every action, changes nothing, needs no root
#
# Steps, each skipped when already done (safe to run again, e.g. for an upgrade):
#   1. system user `linecheck` (no login, home = the state dir)
#   2. virtualenv at PREFIX, `pip install 'linecheck[EXTRAS]'` from SOURCE (default: this checkout)
#   3. /etc/linecheck (root:linecheck 0750), recipes/, the example config; station.yaml from
#      --config, or the example when there is none yet (then it stops: edit it first)
#   4. the systemd units (PREFIX substituted), daemon-reload when they changed
#   5. `linecheck validate` as the service user
#   6. `linecheck build` through linecheck-build.service (the same sandbox as the line), so the
#      TensorRT engines exist before the line starts
#   7. enable linecheck.service and (re)start it, unless --no-start
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
readonly SCRIPT_DIR REPO_DIR

PREFIX=/opt/linecheck
EXTRAS=gpu,tensorrt,genicam,opcua,hmi
SOURCE=""
CONFIG=""
ETC_DIR=/etc/linecheck
UNIT_DIR=/etc/systemd/system
STATE_DIR=/var/lib/linecheck
PYTHON=python3
SERVICE_USER=linecheck
DRY_RUN=0
DO_BUILD=1
DO_START=1

usage() {
    cat <<EOF
usage: $(basename "$0") [options]
  --dry-run          print every action it would take; change nothing (no root needed)
  --prefix DIR       virtualenv location (default: $PREFIX)
  --extras LIST      pip extras, comma separated (default: $EXTRAS; '' for none)
  --source SPEC      what to pip install: a source dir, a wheel, or a requirement such as
                     linecheck==0.1.0 (default: this checkout, $REPO_DIR)
  --config FILE      install FILE as $ETC_DIR/station.yaml (an existing one is backed up)
  --python PATH      interpreter for the virtualenv, >= 3.10 (default: $PYTHON)
  --etc-dir DIR      configuration directory (default: $ETC_DIR; for staging only: the
                     units' ConfigurationDirectory stays /etc/linecheck)
  --unit-dir DIR     where the systemd units go (default: $UNIT_DIR)
  --no-build         do not build the TensorRT engines now
  --no-start         enable the service but do not (re)start it
  -h, --help         this text
EOF
}

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
log() { printf '%s\n' "$*"; }

# A problem that makes the real install impossible; a dry run reports it and goes on, so that
# it still shows the whole plan.
problem() { if ((DRY_RUN)); then warn "$* (a real run would stop here)"; else die "$*"; fi; }

# quote ARGS...: the words as one line that can be pasted into a shell
quote() {
    local word out="" safe='^[A-Za-z0-9_./:=@%+,-]+$' escaped="'\\''"
    for word in "$@"; do
        if [[ $word =~ $safe ]]; then
            out+="$word "
        else
            out+="'${word//\'/$escaped}' "
        fi
    done
    printf '%s' "${out% }"
}

# run CMD...: print CMD and execute it, unless dry run.
run() {
    if ((DRY_RUN)); then
        log "would run: $(quote "$@")"
    else
        log "+ $(quote "$@")"
        "$@"
    fi
}

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --prefix) need_value "$@"; PREFIX=$2; shift ;;
        --extras) [[ $# -ge 2 ]] || die "--extras needs a value"; EXTRAS=$2; shift ;;
        --source) need_value "$@"; SOURCE=$2; shift ;;
        --config) need_value "$@"; CONFIG=$2; shift ;;
        --python) need_value "$@"; PYTHON=$2; shift ;;
        --etc-dir) need_value "$@"; ETC_DIR=$2; shift ;;
        --unit-dir) need_value "$@"; UNIT_DIR=$2; shift ;;
        --no-build) DO_BUILD=0 ;;
        --no-start) DO_START=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

# Paths end up in sed expressions and unit files: absolute, no '#', no whitespace.
for path in "$PREFIX" "$ETC_DIR" "$UNIT_DIR"; do
    [[ $path == /* && $path != *[#[:space:]]* ]] || die "not an absolute path without '#' or spaces: $path"
done
PREFIX=${PREFIX%/}
ETC_DIR=${ETC_DIR%/}
[[ $EXTRAS =~ ^[A-Za-z0-9_,-]*$ ]] || die "--extras: comma-separated names only, got '$EXTRAS'"

if ((DRY_RUN)); then
    log "linecheck install: DRY RUN, nothing will be changed"
elif [[ $EUID -ne 0 ]]; then
    die "must run as root (or use --dry-run to see what it would do)"
fi

# --- what to install ---------------------------------------------------------------------
if [[ -z $SOURCE ]]; then
    if [[ -f $REPO_DIR/pyproject.toml ]]; then SOURCE=$REPO_DIR; else SOURCE=linecheck; fi
fi
pip_spec() {
    local extras=""
    if [[ -n $EXTRAS ]]; then extras="[$EXTRAS]"; fi
    if [[ -e $SOURCE ]]; then
        printf '%s%s' "$SOURCE" "$extras"
    else # a requirement: put the extras between the name and the version specifier
        local name=${SOURCE%%[=<>!~;@ ]*}
        printf '%s%s%s' "$name" "$extras" "${SOURCE#"$name"}"
    fi
}
PIP_SPEC=$(pip_spec)
EXAMPLE_CONFIG=$SCRIPT_DIR/config/station.example.yaml
CONFIG_FILE=$ETC_DIR/station.yaml
[[ -z $CONFIG || -f $CONFIG ]] || die "--config: no such file: $CONFIG"
[[ -f $EXAMPLE_CONFIG ]] || die "missing $EXAMPLE_CONFIG (run from a linecheck checkout)"

# --- preflight -----------------------------------------------------------------------------
# The interpreter only matters when the virtualenv is still to be made.
if [[ -x $PREFIX/bin/python ]]; then
    :
elif ! command -v "$PYTHON" >/dev/null 2>&1; then
    problem "no $PYTHON found (install python3 >= 3.10, or pass --python)"
elif ! "$PYTHON" -c 'import sys; raise SystemExit(sys.version_info < (3, 10))'; then
    problem "$PYTHON is older than 3.10"
elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    problem "$PYTHON cannot create virtualenvs (Debian/Ubuntu: apt-get install python3-venv)"
else
    # The virtualenv links to this interpreter. Under /root or /home (pyenv, conda in a home
    # directory) the service user may not reach it, and ProtectHome=yes hides it anyway.
    base_python=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))')
    case $base_python in
        /root/* | /home/* | /run/user/*)
            problem "$PYTHON is $base_python, inside a home directory that the service cannot see (ProtectHome=yes); use a system interpreter, e.g. --python /usr/bin/python3" ;;
    esac
fi
HAVE_SYSTEMD=0
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    HAVE_SYSTEMD=1
elif ((DRY_RUN)); then
    warn "systemd is not running here: showing the plan for a host where it runs"
    HAVE_SYSTEMD=1
else
    warn "systemd is not running here: units are installed but not enabled, started or used to build"
fi

# --- 1. service user -------------------------------------------------------------------------
log "== service user"
if getent passwd "$SERVICE_USER" >/dev/null; then
    log "user $SERVICE_USER exists: skip"
else
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell "$nologin" --comment "linecheck inspection service" "$SERVICE_USER"
fi

# --- 2. virtualenv and package --------------------------------------------------------------
log "== virtualenv $PREFIX"
if [[ -x $PREFIX/bin/python ]]; then
    log "virtualenv $PREFIX exists: skip creation"
else
    run "$PYTHON" -m venv "$PREFIX"
fi
if ((!DRY_RUN)) && ! runuser -u "$SERVICE_USER" -- "$PREFIX/bin/python" -c '' 2>/dev/null; then
    die "user $SERVICE_USER cannot run $PREFIX/bin/python (where does it link to?); recreate it with --python /usr/bin/python3"
fi
run env PIP_DISABLE_PIP_VERSION_CHECK=1 "$PREFIX/bin/python" -m pip install --upgrade-strategy only-if-needed "$PIP_SPEC"
run install -D -m 0644 "$SCRIPT_DIR/README.md" "$PREFIX/share/doc/linecheck/README.md"

# --- 3. configuration -------------------------------------------------------------------------
log "== configuration $ETC_DIR"
run install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC_DIR" "$ETC_DIR/recipes"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
run install -m 0640 -o root -g "$SERVICE_USER" "$EXAMPLE_CONFIG" "$ETC_DIR/station.example.yaml"
FRESH_CONFIG=0
if [[ -n $CONFIG ]]; then
    if [[ -f $CONFIG_FILE ]] && cmp -s "$CONFIG" "$CONFIG_FILE"; then
        log "$CONFIG_FILE is already $CONFIG: skip"
    else
        if [[ -f $CONFIG_FILE ]]; then
            run cp -p "$CONFIG_FILE" "$CONFIG_FILE.bak.$(date +%Y%m%dT%H%M%S)"
        fi
        run install -m 0640 -o root -g "$SERVICE_USER" "$CONFIG" "$CONFIG_FILE"
    fi
elif [[ -f $CONFIG_FILE ]]; then
    log "$CONFIG_FILE exists: keep it"
else
    run install -m 0640 -o root -g "$SERVICE_USER" "$EXAMPLE_CONFIG" "$CONFIG_FILE"
    FRESH_CONFIG=1
fi

# --- 4. systemd units -------------------------------------------------------------------------
log "== systemd units $UNIT_DIR"
render_unit() {
    sed -e "s#/opt/linecheck#$PREFIX#g" -e "s#/etc/linecheck/station.yaml#$CONFIG_FILE#g" "$1"
}
UNITS_CHANGED=0
for unit in linecheck.service linecheck-build.service; do
    dest=$UNIT_DIR/$unit
    if [[ -f $dest ]] && cmp -s <(render_unit "$SCRIPT_DIR/systemd/$unit") "$dest"; then
        log "$dest is up to date: skip"
        continue
    fi
    UNITS_CHANGED=1
    if ((DRY_RUN)); then
        log "would write: $dest (from deploy/systemd/$unit, /opt/linecheck -> $PREFIX)"
    else
        log "+ write $dest"
        install -d -m 0755 "$UNIT_DIR"
        tmp=$(mktemp "$UNIT_DIR/.$unit.XXXXXX")
        render_unit "$SCRIPT_DIR/systemd/$unit" >"$tmp"
        chmod 0644 "$tmp"
        mv -f "$tmp" "$dest"
    fi
done
if ((UNITS_CHANGED && HAVE_SYSTEMD)); then
    run systemctl daemon-reload
fi

if ((FRESH_CONFIG)); then
    log ""
    log "Installed the EXAMPLE config as $CONFIG_FILE. Edit it (cameras, PLC address, users),"
    log "add recipes under $ETC_DIR/recipes, then run this script again (or --config FILE)."
    log "Skipping: linecheck validate, linecheck build, enabling the service."
    if ((DRY_RUN)); then log "dry run finished: nothing was changed"; fi
    exit 0
fi

# --- 5. validate ---------------------------------------------------------------------------
log "== validate"
# as the service user, so a file it cannot read fails now rather than at the first start. The
# same checks as `linecheck run` before it opens a camera or a port (the recipes folder and the
# recipe to start on, the storage folder, every section); a refused config stops the install
# here: nothing is built, enabled or (re)started, and a running line keeps its old config.
if ! run runuser -u "$SERVICE_USER" -- "$PREFIX/bin/linecheck" validate "$CONFIG_FILE"; then
    die "$CONFIG_FILE is refused (file: field: reason above); fix it and run this script again"
fi

# --- 6. engines ----------------------------------------------------------------------------
log "== engines"
if ((!DO_BUILD)); then
    log "--no-build: skip (engines are built when linecheck-build.service next runs)"
elif ((HAVE_SYSTEMD)); then
    # restart, not start: a oneshot with RemainAfterExit stays "active" and start would not rerun it
    log "linecheck-build.service runs: $PREFIX/bin/linecheck build -c $CONFIG_FILE (in the service's sandbox)"
    if ! run systemctl restart linecheck-build.service; then
        die "engine build failed: journalctl -u linecheck-build.service -n 100 --no-pager"
    fi
elif ! run runuser -u "$SERVICE_USER" -- "$PREFIX/bin/linecheck" build -c "$CONFIG_FILE"; then
    die "engine build failed (output above)"
fi

# --- 7. enable and start ---------------------------------------------------------------------
log "== service"
if ((!HAVE_SYSTEMD)); then
    log "no systemd: start it yourself: $PREFIX/bin/linecheck run -c $CONFIG_FILE"
    exit 0
fi
run systemctl enable linecheck.service
if ((!DO_START)); then
    log "--no-start: enabled, not started (systemctl start linecheck.service)"
elif systemctl is-active --quiet linecheck.service 2>/dev/null; then
    log "linecheck.service is running: restarting it (the line pauses for the restart)"
    run systemctl restart linecheck.service
else
    run systemctl start linecheck.service
fi
if ((DRY_RUN)); then
    log "dry run finished: nothing was changed"
else
    log "done: systemctl status linecheck.service; journalctl -u linecheck.service -f"
fi
