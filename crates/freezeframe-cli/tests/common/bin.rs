//! The one way tests run the binary: every run, spawned or waited for,
//! plain or under a wrapper (`setpriv`), starts from the same cleaned
//! environment, so what the developer's shell exports cannot change a test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables freezeframe reads; none leaks in from the test's own
/// environment.
const READ_BY_FREEZEFRAME: &[&str] = &[
    "FREEZEFRAME_CONFIG",
    "FREEZEFRAME_FAULT",
    "FREEZEFRAME_LOG",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

/// The binary under test.
pub fn path() -> PathBuf {
    assert_cmd::cargo::cargo_bin("freezeframe")
}

fn clean(c: &mut Command, config: Option<&Path>) {
    for v in READ_BY_FREEZEFRAME {
        c.env_remove(v);
    }
    // Retention counts days in local time: make it the same everywhere.
    c.env("TZ", "UTC");
    if let Some(p) = config {
        c.env("FREEZEFRAME_CONFIG", p);
    }
}

/// `freezeframe` with a clean environment and `config` (if any) as its
/// config file.
pub fn freezeframe(config: Option<&Path>) -> Command {
    let mut c = Command::new(path());
    clean(&mut c, config);
    c
}

/// `freezeframe` run by `wrapper` (`["setpriv", "--bounding-set", ...,
/// "--"]`), with the same clean environment.
pub fn wrapped(wrapper: &[impl AsRef<OsStr>], config: Option<&Path>) -> Command {
    let (prog, args) = wrapper.split_first().expect("a wrapper program");
    let mut c = Command::new(prog);
    c.args(args).arg(path());
    clean(&mut c, config);
    c
}

/// Root without the capabilities that bypass file permissions: a mode-000
/// file of another owner cannot be read, as on a root-squashed mount.
pub const UNPRIVILEGED_ROOT: [&str; 4] = [
    "setpriv",
    "--bounding-set",
    "-dac_override,-dac_read_search",
    "--",
];

/// `freezeframe` run as [`UNPRIVILEGED_ROOT`], with the clean environment.
pub fn unprivileged(config: Option<&Path>) -> Command {
    wrapped(&UNPRIVILEGED_ROOT, config)
}
