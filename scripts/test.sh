#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, then
# formatting, lints and every test. Privileged tests (loop devices, btrfs,
# cgroups) need root; with CI=true a missing facility fails the run instead
# of skipping.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/deps.sh"
if [ "$(id -u)" = 0 ]; then
    ff_install_deps
    ff_install_test_deps
    # The LVM tests boot a QEMU guest (the host kernel has no device-mapper).
    # Setup is cached in /var/tmp/lvmvm: seconds once done.
    testbed="$repo/../shared/testbed"
    if [ -f "$testbed/lvmvm-setup.sh" ]; then
        echo "== LVM test guest setup"
        ff_prepare_qemu
        bash "$testbed/lvmvm-setup.sh" | tail -n 1
    elif [ "${CI:-}" = true ]; then
        echo "CI=true: $testbed/lvmvm-setup.sh is missing (shared/ must sit beside the repository)" >&2
        exit 1
    fi
    # The repository tests write to a real S3 server (SeaweedFS, loopback
    # only), started fresh here and stopped (by its PID) when this exits.
    if [ -f "$testbed/s3-server-up.sh" ]; then
        echo "== S3 test server"
        bash "$testbed/s3-server-down.sh"
        trap 'bash "$testbed/s3-server-down.sh"' EXIT
        bash "$testbed/s3-server-up.sh" | tail -n 1
    fi
elif [ "${CI:-}" = true ]; then
    echo "CI=true: the test suite must run as root" >&2
    exit 1
else
    echo "not root: privileged tests will be skipped" >&2
fi
cd "$repo"
# Kept outside the clone so later runs on the same machine reuse the build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/freezeframe-target}
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
if [ "$(id -u)" = 0 ]; then
    echo "== package (build, dpkg -i, check, dpkg -r)"
    bash "$here/test-package.sh"
fi
