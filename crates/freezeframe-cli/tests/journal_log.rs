//! Run by systemd, stderr is the journal (`JOURNAL_STREAM` names it):
//! every line carries its syslog level as `<N>`; elsewhere it does not.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

#[test]
fn lines_carry_syslog_levels_only_when_stderr_is_the_journal() {
    let d = tempfile::tempdir().unwrap();
    let err = d.path().join("stderr");
    let run = |journal: bool| {
        let f = std::fs::File::create(&err).unwrap();
        let m = f.metadata().unwrap();
        let mut c = common::bin::freezeframe(Some(&d.path().join("missing.toml")));
        c.arg("status").stdout(Stdio::null()).stderr(f);
        if journal {
            c.env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
        } else {
            // Another stream's numbers: not ours, so plain lines.
            c.env("JOURNAL_STREAM", "1:1");
        }
        assert_eq!(c.status().unwrap().code(), Some(2));
        std::fs::read_to_string(&err).unwrap()
    };
    let j = run(true);
    assert!(
        j.starts_with("<3>freezeframe: error: cannot read config"),
        "{j}"
    );
    let plain = run(false);
    assert!(
        plain.starts_with("freezeframe: error: cannot read config"),
        "{plain}"
    );
}
