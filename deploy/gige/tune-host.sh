#!/usr/bin/env bash
# Tune a station host's receive path for GigE Vision cameras.
#
#   deploy/gige/tune-host.sh --iface enp3s0 --dry-run   # what it would change (no root needed)
#   sudo deploy/gige/tune-host.sh --iface enp3s0        # change it; persist the sysctls
#
# A GigE Vision camera streams a frame as a burst of UDP (GVSP) packets at line rate. Lost
# packets mean resend requests, late frames or incomplete frames, i.e. fail-safe verdicts on
# the line. What the host can do about it:
#   - socket receive buffers (net.core.rmem_max, rmem_default >= 32 MB): a burst must fit in
#     the socket buffer while the grabbing thread is busy or descheduled; the kernel default
#     (~208 KB) holds a few dozen packets, less than one frame.
#   - MTU 9000 on the camera interface (jumbo frames): ~6x fewer packets and interrupts per
#     frame. The camera's GevSCPSPacketSize must be raised to match (the camera config), and
#     every switch on the path must pass jumbo frames.
#   - reverse-path filter on the camera interface = 2 (loose): with strict filtering (1) the
#     kernel silently drops packets whose source address would not be routed back out of the
#     interface they came in on. Cameras on link-local 169.254/16 addresses, cameras with a
#     persistent IP from another subnet (before ForceIP fixes it), and hosts with two camera
#     NICs on overlapping subnets hit exactly that: discovery (GVCP) replies or stream
#     packets vanish without an error. Loose mode only requires the source to be routable via
#     some interface, which keeps spoof protection for unroutable sources; 0 would turn it off
#     completely. The kernel uses max(conf.all, conf.IFACE), so 2 wins over all=1.
#   - CPU frequency governor "performance": ramping up from a low clock after an idle gap
#     adds jitter exactly when a part arrives.
#   - NIC RX ring at its maximum: absorbs a burst while the softirq is not scheduled yet.
#   - interrupt coalescing: printed as a hint, not changed (a latency/CPU trade-off per NIC).
# MTU, governor and ring sizes are not persisted by this script: it prints how to.
set -euo pipefail

SYSCTL_FILE=/etc/sysctl.d/90-linecheck-gige.conf
IFACE=""
MTU=9000
RMEM=33554432 # 32 MiB
DRY_RUN=0
DO_GOVERNOR=1

usage() {
    cat <<EOF
usage: $(basename "$0") [--iface IFACE] [--dry-run] [options]
  --iface IFACE        the camera interface (MTU, rp_filter, ring buffers, coalescing)
  --dry-run            read the current values and print what would change; change nothing
  --mtu N              MTU for the camera interface (default: $MTU)
  --rmem BYTES         minimum for net.core.rmem_max and rmem_default (default: $RMEM)
  --sysctl-file PATH   where the sysctls are persisted (default: $SYSCTL_FILE)
  --no-governor        leave the CPU frequency governor alone
  -h, --help           this text
EOF
}

die() { printf 'tune-host.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '%s\n' "$*"; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --iface) need_value "$@"; IFACE=$2; shift ;;
        --dry-run) DRY_RUN=1 ;;
        --mtu) need_value "$@"; MTU=$2; shift ;;
        --rmem) need_value "$@"; RMEM=$2; shift ;;
        --sysctl-file) need_value "$@"; SYSCTL_FILE=$2; shift ;;
        --no-governor) DO_GOVERNOR=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[[ $MTU =~ ^[0-9]+$ && $MTU -ge 576 ]] || die "--mtu: a number >= 576, got '$MTU'"
[[ $RMEM =~ ^[0-9]+$ && $RMEM -gt 0 ]] || die "--rmem: a positive number of bytes, got '$RMEM'"
if [[ -n $IFACE ]]; then
    [[ $IFACE != */* && $IFACE != . && $IFACE != .. ]] || die "--iface: not an interface name: $IFACE"
    [[ -d /sys/class/net/$IFACE ]] || die "no such interface: $IFACE (see: ip -br link)"
fi
if ((DRY_RUN)); then
    log "tune-host: DRY RUN, nothing will be changed"
elif [[ $EUID -ne 0 ]]; then
    die "must run as root to change settings (or use --dry-run)"
fi

CHANGES=0
# current VALUE: file content, or "" when the file does not exist or cannot be read
current() { if [[ -r $1 ]]; then tr -d '\n' <"$1"; fi; }

# apply WHAT FROM TO CMD...: report one setting; run CMD when it differs and this is no dry run
apply() {
    local what=$1 from=$2 to=$3
    shift 3
    if [[ $from == "$to" ]]; then
        log "ok: $what is already $to"
    elif ((DRY_RUN)); then
        log "would change $what from ${from:-?} to $to"
        CHANGES=$((CHANGES + 1))
    else
        log "change $what from ${from:-?} to $to"
        "$@"
        CHANGES=$((CHANGES + 1))
    fi
}

write_value() { printf '%s\n' "$2" >"$1"; }

# --- socket receive buffers ------------------------------------------------------------------
log "== socket receive buffers (>= $RMEM bytes)"
declare -a PERSIST=()
for key in rmem_max rmem_default; do
    file=/proc/sys/net/core/$key
    now=$(current "$file")
    want=$RMEM
    if [[ $now =~ ^[0-9]+$ ]] && ((now > RMEM)); then want=$now; fi # never lower a larger value
    apply "net.core.$key" "$now" "$want" write_value "$file" "$want"
    PERSIST+=("net.core.$key = $want")
done

# --- camera interface --------------------------------------------------------------------------
if [[ -z $IFACE ]]; then
    log "== camera interface: no --iface given: skipping MTU, rp_filter, ring buffers, coalescing"
else
    log "== camera interface $IFACE"
    now=$(current "/sys/class/net/$IFACE/mtu")
    maxmtu=$(ip -d link show dev "$IFACE" 2>/dev/null | sed -n 's/.* maxmtu \([0-9]*\).*/\1/p' | head -n1 || true)
    if [[ -n $maxmtu && $maxmtu != 0 && $maxmtu -lt $MTU ]]; then
        log "warning: $IFACE supports an MTU of at most $maxmtu; not changing it (jumbo frames need a NIC that supports them)"
    else
        apply "MTU of $IFACE" "$now" "$MTU" ip link set dev "$IFACE" mtu "$MTU"
    fi
    log "   not persisted: set MTU=$MTU in the interface's network config (systemd-networkd [Link] MTUBytes=,"
    log "   NetworkManager 802-3-ethernet.mtu, netplan mtu:) and GevSCPSPacketSize on the camera to match"

    all=$(current /proc/sys/net/ipv4/conf/all/rp_filter)
    now=$(current "/proc/sys/net/ipv4/conf/$IFACE/rp_filter")
    apply "net.ipv4.conf.$IFACE.rp_filter" "$now" 2 write_value "/proc/sys/net/ipv4/conf/$IFACE/rp_filter" 2
    log "   (2 = loose; the kernel applies max(all=${all:-?}, $IFACE); strict (1) silently drops GVCP/GVSP"
    log "   from link-local or other-subnet cameras)"
    if [[ $IFACE == *.* ]]; then # a VLAN name with a dot: the sysctl.d slash syntax keeps it whole
        PERSIST+=("net/ipv4/conf/$IFACE/rp_filter = 2")
    else
        PERSIST+=("net.ipv4.conf.$IFACE.rp_filter = 2")
    fi

    if ! command -v ethtool >/dev/null 2>&1; then
        log "ethtool is not installed: cannot read or set ring buffers and coalescing (apt-get install ethtool)"
    else
        rings=$(ethtool -g "$IFACE" 2>/dev/null || true)
        rx_max=$(awk '/^Pre-set maximums/{s=1} /^Current hardware/{s=2} s==1 && /^RX:/{print $2; exit}' <<<"$rings")
        rx_now=$(awk '/^Current hardware/{s=1} s==1 && /^RX:/{print $2; exit}' <<<"$rings")
        if [[ $rx_max =~ ^[0-9]+$ && $rx_now =~ ^[0-9]+$ ]]; then
            apply "RX ring of $IFACE" "$rx_now" "$rx_max" ethtool -G "$IFACE" rx "$rx_max"
            log "   not persisted: systemd .link RxBufferSize=max, a NetworkManager ethtool setting or a udev rule"
        else
            log "ring buffers: the $IFACE driver does not report them (ethtool -g): skip"
        fi
        coalesce=$(ethtool -c "$IFACE" 2>/dev/null || true)
        adaptive=$(sed -n 's/^Adaptive RX: *\([a-z/]*\).*/\1/p' <<<"$coalesce")
        usecs=$(sed -n 's/^rx-usecs: *\([0-9a-z/]*\).*/\1/p' <<<"$coalesce")
        if [[ -n $usecs ]]; then
            log "coalescing on $IFACE: adaptive-rx=${adaptive:-?} rx-usecs=$usecs (not changed)"
        else
            log "coalescing: the $IFACE driver does not report it (ethtool -c)"
        fi
        log "   hint: a fixed, moderate rx-usecs (about 50-100 us) keeps interrupts per frame low without"
        log "   adding much latency; adaptive-rx varies it with load, which makes timing less predictable:"
        log "   ethtool -C $IFACE adaptive-rx off rx-usecs 62   (measure t_ready -> verdict before and after)"
    fi
    log "   hint: keep $IFACE's IRQs off the cores the station is pinned to (/proc/irq/*/smp_affinity_list)"
fi

# --- CPU frequency governor --------------------------------------------------------------------
log "== CPU frequency governor"
if ((!DO_GOVERNOR)); then
    log "--no-governor: skip"
else
    shopt -s nullglob
    governors=(/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor)
    shopt -u nullglob
    if ((${#governors[@]} == 0)); then
        log "cpufreq is not exposed here (a VM or container, or the frequency is fixed in firmware): skip"
    else
        available=$(current "${governors[0]%/*}/scaling_available_governors")
        if [[ -n $available && " $available " != *" performance "* ]]; then
            log "the cpufreq driver offers no 'performance' governor ($available): skip"
        else
            for gov in "${governors[@]}"; do
                cpu=${gov#/sys/devices/system/cpu/}
                apply "governor of ${cpu%%/*}" "$(current "$gov")" performance write_value "$gov" performance
            done
            log "   not persisted: cpupower frequency-set -g performance at boot, or the firmware's power profile"
        fi
    fi
fi

# --- persist sysctls -----------------------------------------------------------------------------
log "== persist sysctls: $SYSCTL_FILE"
content="# Written by linecheck deploy/gige/tune-host.sh: GigE Vision receive path.
$(printf '%s\n' "${PERSIST[@]}")"
if [[ -f $SYSCTL_FILE ]] && cmp -s <(printf '%s\n' "$content") "$SYSCTL_FILE"; then
    log "ok: $SYSCTL_FILE is up to date"
elif ((DRY_RUN)); then
    log "would write $SYSCTL_FILE:"
    while IFS= read -r line; do log "    $line"; done <<<"$content"
    CHANGES=$((CHANGES + 1))
else
    log "write $SYSCTL_FILE"
    mkdir -p "$(dirname "$SYSCTL_FILE")"
    printf '%s\n' "$content" >"$SYSCTL_FILE"
fi

if ((DRY_RUN)); then
    log "dry run: $CHANGES change(s) would be made; nothing was changed"
else
    log "done: $CHANGES change(s)"
fi
