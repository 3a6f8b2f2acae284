#!/usr/bin/env bash
# Sets up nettop-ui on Debian/Ubuntu as root: system packages, a kernel headers tree
# for bcc, and a venv on the distro Python that can see python3-bpfcc.
#   ./install.sh          runtime only
#   ./install.sh --dev    also the test, lint and benchmark tools
#   ./install.sh --service  also install and start the history recorder's systemd unit
set -euo pipefail
cd "$(dirname "$0")"
DEV=0
SERVICE=0
for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        --service) SERVICE=1 ;;
        *) echo "install.sh: error: unknown option $arg (--dev, --service)" >&2; exit 2 ;;
    esac
done

need_pkgs=(python3-venv python3-bpfcc nethogs iproute2 procps)
[[ $DEV == 1 ]] && need_pkgs+=(tmux iputils-ping libcap2-bin gcc libc6-dev dnsmasq-base systemd)
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# --dev: a real Prometheus for tests/test_prometheus.py, which runs its own instance.
# Without recommends (no node-exporter and its timers); the package's own service,
# which its postinst starts where systemd runs, is stopped and disabled.
if [[ $DEV == 1 ]] && ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "ok installed"; then
    echo "install.sh: installing prometheus" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi

# bcc compiles its programs against /lib/modules/$(uname -r)/build. Kernels without a
# headers package get Debian's nearest headers tree; tracepoint programs do not depend
# on struct layouts, so that is safe for them.
kbuild="/lib/modules/$(uname -r)/build"
if [[ ! -e "$kbuild" ]]; then
    hdr=$(apt-cache search --names-only '^linux-headers-[0-9.]+(\+deb[0-9]+)?-amd64$' \
          | awk '{print $1}' | sort -V | tail -1)
    if [[ -n "$hdr" ]]; then
        echo "install.sh: no headers for $(uname -r); using $hdr" >&2
        dpkg-query -W -f='${Status}' "$hdr" 2>/dev/null | grep -q "ok installed" \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$hdr" >/dev/null
        ver=${hdr#linux-headers-}
        common="/usr/src/linux-headers-${ver%-amd64}-common"
        mkdir -p "/lib/modules/$(uname -r)"
        ln -sfn "/usr/src/$hdr" "$kbuild"
        [[ -d "$common" ]] && ln -sfn "$common" "/lib/modules/$(uname -r)/source"
    else
        echo "install.sh: no kernel headers package found; the ebpf backend will not run" >&2
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [[ $DEV == 1 ]]; then
    .venv/bin/python -m pip install -q -e '.[dev]'
else
    .venv/bin/python -m pip install -q -e .
fi

# --service: packaging/nettop-ui-record.service, pointed at this checkout's venv.
if [[ $SERVICE == 1 ]]; then
    if [[ ! -d /run/systemd/system ]]; then
        echo "install.sh: systemd is not running here; not installing the recorder service" \
             "(run '.venv/bin/nettop-ui record' another way: docs/history.md)" >&2
        exit 0
    fi
    unit=/etc/systemd/system/nettop-ui-record.service
    sed "s|/opt/nettop-ui|$(pwd)|g" packaging/nettop-ui-record.service > "$unit"
    systemctl daemon-reload
    systemctl enable --now nettop-ui-record.service
    echo "install.sh: nettop-ui-record.service is running; see 'nettop-ui history'" >&2
fi
