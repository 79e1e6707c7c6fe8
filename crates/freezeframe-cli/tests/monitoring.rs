//! Monitoring (issue 15): `freezeframe status` rows and exit codes for a
//! fresh, a stale, a failed and a never backed-up container; the metrics
//! textfile after an ok and a partial run, read by a real Prometheus
//! text-format parser (Python's prometheus_client) and `promtool check
//! metrics`; a run killed half-way leaves the previous file as it was.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{privileged, require, sh, which, CgVersion, Ct, Env, LoopBtrfs, TestCgroup};
use serde_json::Value;

/// Four containers `a`..`d` on one volume, each with a process.
fn four() -> (LoopBtrfs, Vec<TestCgroup>, Vec<Ct>) {
    let vol = LoopBtrfs::new("1G");
    let mut cgs = Vec::new();
    let mut cts = Vec::new();
    for id in ["a", "b", "c", "d"] {
        let mut cg = TestCgroup::new(CgVersion::V2);
        cg.spawn(&["sleep", "1000"]);
        let private = vol.volume().join(id);
        std::fs::create_dir(&private).unwrap();
        std::fs::write(private.join("data"), id.repeat(10_000)).unwrap();
        cts.push(Ct::new(id, &cg, &private));
        cgs.push(cg);
    }
    (vol, cgs, cts)
}

fn status(env: &Env, args: &[&str]) -> (i32, String, Value) {
    let mut a = vec!["status"];
    a.extend_from_slice(args);
    let (code, text, err) = env.run(&a);
    a.push("--json");
    let (jcode, json, jerr) = env.run(&a);
    assert_eq!(code, jcode, "text and JSON disagree: {err}{jerr}");
    (code, text, serde_json::from_str(&json).unwrap())
}

/// id → (level, reason) from `status --json`.
fn levels(v: &Value) -> BTreeMap<String, (String, String)> {
    v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                (
                    r["level"].as_str().unwrap().to_owned(),
                    r["reason"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn row<'a>(text: &'a str, id: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .unwrap_or_else(|| panic!("no row for {id}:\n{text}"))
}

#[test]
fn status_reports_fresh_stale_failed_and_never_with_monitoring_exit_codes() {
    if !privileged() {
        return;
    }
    let (vol, _cgs, cts) = four();
    let env = Env::new(&vol.volume(), &cts, "");
    let (code, text, v) = status(&env, &[]);
    assert_eq!(code, 2, "nothing backed up yet: critical\n{text}");
    assert!(levels(&v)
        .values()
        .all(|(l, r)| l == "critical" && r == "never backed up"));

    env.backup_json(&["b"]);
    std::thread::sleep(std::time::Duration::from_secs(5));
    env.backup_json(&["a", "c"]);
    // c's next run fails (its pre-freeze hook refuses); its good backup stays.
    env.edit(|c| {
        c.set("hooks.pre-freeze", "test \"$FF_CONTAINER\" != c");
    });
    let (code, out, err) = env.run(&["backup", "c"]);
    assert_eq!(code, 1, "{out}{err}");

    let (code, text, v) = status(&env, &["--max-age", "4s"]);
    assert_eq!(code, 2, "{text}");
    let l = levels(&v);
    assert_eq!(l["a"].0, "ok", "{text}");
    assert_eq!(l["b"].0, "critical", "{text}");
    assert!(
        l["b"].1.starts_with("last good backup ") && l["b"].1.ends_with("ago, older than 4s"),
        "{text}"
    );
    assert_eq!(l["c"].0, "warning", "{text}");
    assert!(
        l["c"].1.starts_with("last run failed: not frozen"),
        "{text}"
    );
    assert_eq!(
        l["d"],
        ("critical".into(), "never backed up".into()),
        "{text}"
    );
    assert!(
        text.starts_with("CRITICAL: 3 of 4 containers need attention"),
        "{text}"
    );
    assert!(row(&text, "a").contains(" OK "), "{text}");
    assert!(row(&text, "d").contains("never"), "{text}");
    assert!(row(&text, "c").contains("failed"), "{text}");
    let rows = v["containers"].as_array().unwrap();
    let a = rows.iter().find(|r| r["id"] == "a").unwrap();
    assert!(a["age_seconds"].as_i64().unwrap() < 4, "{a}");
    assert!(
        a["last_run"]["freeze_seconds"].as_f64().unwrap() > 0.0,
        "{a}"
    );
    assert!(
        a["last_run"]["bytes_read"].as_u64().unwrap() >= 10_000,
        "{a}"
    );
    assert_eq!(
        a["last_success_run"],
        rows.iter().find(|r| r["id"] == "c").unwrap()["last_success_run"],
        "a and c were backed up together"
    );

    // Without the never-backed-up container, the worst is c's warning;
    // without c too, all is well.
    let (code, text, _) = status(&env, &["--max-age", "1h"]);
    assert_eq!(code, 2, "{text}");
    env.edit(|c| {
        c.pop("container");
    });
    let (code, text, _) = status(&env, &["--max-age", "1h"]);
    assert_eq!(code, 1, "{text}");
    env.edit(|c| {
        c.pop("container");
    });
    let (code, text, v) = status(&env, &["--max-age", "1h"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(v["level"], "ok");

    // A record that cannot be read: UNKNOWN, as monitoring plugins say.
    std::fs::write(env.state().join("status.json"), "{not json").unwrap();
    let (code, text, _) = env.run(&["status"]);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.starts_with("UNKNOWN: ") && text.contains("remove it"),
        "{text}"
    );
}

/// Debian's Python, where python3-prometheus-client is installed (a
/// pyenv or venv `python3` earlier on PATH would not have it).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Every sample of a textfile, as prometheus_client parses it:
/// `name{k="v",...}` → value.
fn parse_metrics(path: &Path) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert fam.type == "gauge", fam
    assert fam.documentation, fam
    for s in fam.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        out[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
"#;
    let o = Command::new(DEBIAN_PYTHON)
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn has_prometheus_client() -> bool {
    Command::new(DEBIAN_PYTHON)
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn metrics_textfile_parses_and_survives_a_killed_run() {
    if !privileged()
        || !require("python3 prometheus_client", has_prometheus_client())
        || !require("promtool (Debian prometheus)", which("promtool"))
        || !require("setpriv", which("setpriv"))
    {
        return;
    }
    let (vol, _cgs, cts) = four();
    let env = Env::new(&vol.volume(), &cts[..2], "");
    let prom = env.dir.path().join("textfile").join("freezeframe.prom");
    std::fs::create_dir(prom.parent().unwrap()).unwrap();
    env.edit(|c| {
        c.set("metrics.textfile", common::config::path(&prom));
    });
    let m = env.backup_json(&["--all"]);
    let promtool = sh(&format!(
        "promtool check metrics < {} 2>&1; echo rc=$?",
        prom.display()
    ));
    assert!(promtool.trim_end().ends_with("rc=0"), "{promtool}");
    let mode = std::fs::metadata(&prom).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o644
    );
    let s = parse_metrics(&prom);
    let status: Value =
        serde_json::from_str(&std::fs::read_to_string(env.state().join("status.json")).unwrap())
            .unwrap();
    for (i, id) in ["a", "b"].iter().enumerate() {
        let l = format!("{{container=\"{id}\"}}");
        let c = &m["containers"][i];
        assert_eq!(s[&format!("freezeframe_last_result{l}")], 0.0);
        assert_eq!(
            s[&format!("freezeframe_read_bytes{l}")],
            c["bytes_in"].as_f64().unwrap()
        );
        assert_eq!(
            s[&format!("freezeframe_written_bytes{l}")],
            c["bytes_out"].as_f64().unwrap()
        );
        assert!(
            (s[&format!("freezeframe_freeze_seconds{l}")] * 1000.0
                - c["freeze_ms"].as_f64().unwrap())
            .abs()
                < 1e-6
        );
        assert!(s[&format!("freezeframe_duration_seconds{l}")] > 0.0);
        let ok_at = chrono::DateTime::parse_from_rfc3339(
            status["containers"][id]["last_success"][0]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            s[&format!("freezeframe_last_success_timestamp_seconds{l}")],
            ok_at.timestamp() as f64
        );
    }
    assert_eq!(s["freezeframe_run_containers{result=\"ok\"}"], 2.0);
    assert_eq!(s["freezeframe_run_containers{result=\"partial\"}"], 0.0);
    assert!(s["freezeframe_run_read_bytes"] >= 20_000.0);
    assert!(
        !s.keys().any(|k| k.contains("container=\"c\"")),
        "only configured containers"
    );

    // A partial run: a file of b's it cannot read.
    let secret = cts[1].private.join("secret");
    std::fs::write(&secret, "x").unwrap();
    common::unreadable(&secret);
    env.backup_partial(&["--all"]);
    let before = parse_metrics(&prom);
    assert_eq!(before["freezeframe_last_result{container=\"b\"}"], 1.0);
    assert_eq!(before["freezeframe_last_result{container=\"a\"}"], 0.0);
    assert_eq!(
        before["freezeframe_run_containers{result=\"partial\"}"],
        1.0
    );
    assert_eq!(
        before["freezeframe_last_success_timestamp_seconds{container=\"b\"}"],
        s["freezeframe_last_success_timestamp_seconds{container=\"b\"}"],
        "a partial backup is not a success"
    );

    // Killed half-way: the file is the previous run's, byte for byte.
    let text = std::fs::read(&prom).unwrap();
    let child = env.spawn(&["backup", "--all"], Some("mid-archive"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&prom).unwrap(), text);
    let (code, o, e) = env.run(&["recover"]);
    assert_eq!(code, 0, "{o}{e}");
    let left: Vec<_> = std::fs::read_dir(prom.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left beside the textfile");
}
