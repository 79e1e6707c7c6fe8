//! Progress (issue 15): on a terminal, a bar per container with bytes
//! read of the size a pre-walk found (excludes applied), rate and ETA,
//! under an overall "containers done" line; not on a terminal, one plain
//! line per phase; `--quiet`, none.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{privileged, require, which, Ct, Env};

#[test]
fn bars_on_a_terminal_plain_lines_elsewhere_nothing_when_quiet() {
    if !privileged() || !require("script (util-linux)", which("script")) {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    std::fs::write(private.join("data"), vec![1u8; 5 << 20]).unwrap();
    std::fs::create_dir(private.join("cache")).unwrap();
    std::fs::write(private.join("cache/big"), vec![2u8; 3 << 20]).unwrap();
    let env = Env::new(&vol.volume(), &[Ct::new("101", &cg, &private)], "");
    env.edit(|c| {
        c.set(
            "container.0.exclude",
            toml::Value::try_from(["cache/"]).unwrap(),
        );
    });
    // A pseudo-terminal, through script(1); the hang keeps the bars up.
    let log = env.dir.path().join("typescript");
    let cmd = format!(
        "{} --config {} backup --all",
        common::bin::path().display(),
        env.config.display()
    );
    let st = Command::new("script")
        .args(["-qec", &cmd])
        .arg(&log)
        .env("FREEZEFRAME_FAULT", "mid-archive:hang=1s")
        .env_remove("CI")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let shown = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(shown.contains("containers done"), "{shown}");
    assert!(
        shown.contains("/5.00 MiB"),
        "the pre-walk's size, cache/ excluded: {shown}"
    );
    assert!(shown.contains("ETA "), "{shown}");
    assert!(shown.contains("thawed after"), "{shown}");

    // Not a terminal: plain lines.
    let (code, _, err) = env.run(&["backup", "--all"]);
    assert_eq!(code, 0, "{err}");
    for phase in ["freezing", "thawed after", "archiving", "ok"] {
        assert!(err.contains(&format!("freezeframe: 101: {phase}")), "{err}");
    }
    let (code, out, err) = env.run(&["backup", "--all", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("freezeframe: 101:"), "{err}");
    assert!(
        out.starts_with("run "),
        "the summary still goes to stdout: {out}"
    );
}
