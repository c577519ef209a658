#!/usr/bin/env bash
# Idempotent host set-up for triolb: Debian packages, kernel headers for bcc, the .venv.
# Prints every change it makes to the host; prints nothing but a summary when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

changed=()
note() { changed+=("$1"); echo "setup: $1"; }
# Run a command quietly; show its output only if it fails.
quiet() { local out; if ! out=$("$@" 2>&1); then echo "$out" >&2; return 1; fi; }

DEB_PACKAGES=(
    python3-bpfcc bpfcc-tools python3-venv python3-dev iproute2 nftables conntrack
    bird2 gobgpd iperf3 linux-headers-amd64 ethtool tcpdump keepalived nginx-light wrk
    chromium
)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    quiet apt-get update -qq
    quiet apt-get install -y -qq --no-install-recommends "${missing[@]}"
    note "installed Debian packages: ${missing[*]}"
fi

# bcc compiles against kernel headers found through /lib/modules/$(uname -r)/{build,source}.
# A kernel without its own headers package gets Debian's generic amd64 headers.
kmod="/lib/modules/$(uname -r)"
if [[ ! -e "$kmod/build/include" ]]; then
    arch_dir=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)
    common_dir=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -1)
    if [[ -z "$arch_dir" || -z "$common_dir" ]]; then
        echo "setup: no linux-headers-*-amd64 / -common under /usr/src" >&2
        exit 1
    fi
    mkdir -p "$kmod"
    ln -sfn "$arch_dir" "$kmod/build"
    ln -sfn "$common_dir" "$kmod/source"
    note "linked $kmod/build -> $arch_dir and $kmod/source -> $common_dir"
fi

# Pinned eBPF maps (the dataplane's state that outlives the daemon) need bpffs, which systemd
# mounts on most machines; containers and minimal images may lack it.
if ! grep -qs " /sys/fs/bpf bpf " /proc/mounts; then
    mkdir -p /sys/fs/bpf
    mount -t bpf bpffs /sys/fs/bpf
    note "mounted bpffs on /sys/fs/bpf"
fi

# The venv sits on the system Python so Debian's python3-bpfcc (import bcc) is visible.
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; sys.exit(sys.base_prefix != "/usr")' 2>/dev/null; then
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
    note "created .venv on /usr/bin/python3 with system site packages"
fi
stamp=.venv/.triolb-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    quiet .venv/bin/python -m pip install -q --upgrade pip
    quiet .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
    note "installed triolb (editable) with test extras into .venv"
fi

.venv/bin/python -c 'import bcc, trio, pyroute2, dpkt, attrs, hypercorn, yaml, numpy' || {
    echo "setup: the venv cannot import its dependencies" >&2
    exit 1
}
if ((${#changed[@]})); then
    echo "setup: ${#changed[@]} change(s) made to the host"
else
    echo "setup: host already set up, nothing changed"
fi
