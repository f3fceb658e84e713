#!/usr/bin/env bash
# Idempotent set-up: apt packages, OVS daemons (userspace datapath), and the project virtualenv.
# Every step checks first, so a second run takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium + chromium-driver: the web view's tests drive Debian's headless browser (nothing downloaded at test time).
APT_PACKAGES=(openvswitch-switch mininet iperf3 iputils-ping ethtool tcpdump curl telnet iproute2 python3-venv
    chromium chromium-driver)
VENV=.venv
# The PyPI mininet (2.3.0.dev6) imports distutils, which Python 3.12 removed.
PYTHON=${PYTHON:-python3}
STAMP=$VENV/.ovs-sdn-installed

say() { printf '[setup] %s\n' "$*"; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        say "this step needs root: $1" >&2
        exit 1
    fi
}

install_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    need_root "apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Order matters (ENVIRONMENT.md): userspace TSO must be set before ovs-vswitchd starts, or TCP/UDP
# through veth ports carry bad checksums.
start_ovs() {
    local ctl=/usr/share/openvswitch/scripts/ovs-ctl
    if ! ovs-vsctl -t 2 show >/dev/null 2>&1; then
        need_root "start ovsdb-server"
        say "starting ovsdb-server"
        "$ctl" start --system-id=random --no-ovs-vswitchd
    fi
    if ! ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then
        need_root "start ovs-vswitchd"
        say "starting ovs-vswitchd (userspace TSO on)"
        ovs-vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
        "$ctl" start --system-id=random --no-ovsdb-server
    fi
    ovs-vsctl -t 2 show >/dev/null
}

python_ok() {
    "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 12)))' 2>/dev/null
}

make_venv() {
    if [ -x $VENV/bin/python ] && ! python_ok $VENV/bin/python; then
        say "$VENV has an unusable Python ($($VENV/bin/python -V 2>&1)); recreating it"
        rm -rf $VENV
    fi
    if [ ! -x $VENV/bin/python ]; then
        python_ok "$PYTHON" || PYTHON=python3.11
        python_ok "$PYTHON" || { say "need Python 3.11 (set PYTHON=...)" >&2; exit 1; }
        say "creating $VENV with $("$PYTHON" -V)"
        "$PYTHON" -m venv $VENV
    fi
}

# Reinstall only when the declared dependencies changed or an import is broken.
install_project() {
    local want
    want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ -f $STAMP ] && [ "$(cat $STAMP)" = "$want" ] &&
        $VENV/bin/python -c 'import mininet.net, os_ken, pytest, selenium, controller, apps, mininet_topos' 2>/dev/null; then
        return
    fi
    say "pip install -e '.[test]'"
    $VENV/bin/python -m pip install -q -e '.[test]'
    echo "$want" >$STAMP
}

install_packages
start_ovs
make_venv
install_project
say "ok: $($VENV/bin/python -V), $(ovs-vsctl --version | head -1), venv $VENV"
