# Sourced by demo.sh and test.sh: installs the system packages freezeframe's
# demo and tests use (Debian), once.

# ff_apt_missing [APT-OPTION...] -- PACKAGE...: installs those of the
# packages that are not installed yet (one apt-get run, or none).
ff_apt_missing() {
    local opts=() missing=""
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${opts[@]}" $missing >/dev/null
    fi
}

ff_install_deps() {
    ff_apt_missing -- btrfs-progs sqlite3 zstd bzip2 gzip attr acl util-linux procps python3 lxc \
        busybox-static binutils restic borgbackup curl libssl-dev pkg-config
    command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup)" >&2; return 1; }
}

# What only the test suite needs, without Debian's recommends (prometheus
# would pull node_exporter and friends): promtool and Python's Prometheus
# parser for the metrics file, zsh and fish to check the completions.
ff_install_test_deps() {
    ff_apt_missing --no-install-recommends -- prometheus python3-prometheus-client zsh fish man-db dpkg-dev
}

# cargo-deb, pinned, built once into /var/tmp (kept across runs like the
# target dir); prints its path.
ff_cargo_deb() {
    local root=/var/tmp/freezeframe-tools version=3.8.0
    if ! "$root/bin/cargo-deb" --version 2>/dev/null | grep -q "^cargo-deb $version\$"; then
        cargo install --quiet --locked --root "$root" --version "$version" cargo-deb >&2
    fi
    echo "$root/bin/cargo-deb"
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
