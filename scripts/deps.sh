# Sourced by demo.sh and test.sh: installs the system packages freezeframe's
# demo and tests use (Debian), once.
ff_install_deps() {
    local pkgs="btrfs-progs sqlite3 zstd bzip2 gzip attr acl util-linux procps python3 lxc busybox-static binutils"
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
