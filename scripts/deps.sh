# Sourced by demo.sh and test.sh: installs the system packages freezeframe's
# demo and tests use (Debian), once.
ff_install_deps() {
    local pkgs="btrfs-progs sqlite3 zstd bzip2 gzip attr acl util-linux procps python3 lxc busybox-static binutils restic borgbackup curl libssl-dev pkg-config"
    local missing=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $missing >/dev/null
    fi
    command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup)" >&2; return 1; }
}

ff_require_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "$0 must run as root (it creates loop devices, btrfs volumes and cgroups)" >&2
        exit 1
    fi
}

# The LVM test guest needs Debian's qemu-system-x86, which breaks a newer
# (backports) qemu-utils when one is preinstalled: install both at Debian's
# version, in one step, before the testbed's setup script runs.
ff_prepare_qemu() {
    if dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "install ok installed"; then
        return 0
    fi
    local v
    v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
        apt-get update -qq
        v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')
    fi
    echo "installing qemu-system-x86 $v (and qemu-utils at the same version)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        --allow-downgrades qemu-system-x86 "qemu-utils=$v" >/dev/null
}
