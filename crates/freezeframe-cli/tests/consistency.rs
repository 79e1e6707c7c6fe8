//! Consistency under load and real freezing: a SQLite writer keeps
//! committing while it is backed up, heartbeats stop exactly while frozen.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    cgroup_v1_freezer_root, privileged, require, sh, wait_for_lines, which, workloads, CgVersion,
    Ct, Env, LoopBtrfs, TestCgroup,
};
use serde_json::Value;

fn window(ct: &Value) -> (i128, i128, i128, i128) {
    let w = &ct["window"];
    let g = |k: &str| {
        w[k].as_i64()
            .unwrap_or_else(|| panic!("window.{k} missing: {ct}")) as i128
    };
    (
        g("requested_ns"),
        g("frozen_ns"),
        g("thaw_ns"),
        g("thawed_ns"),
    )
}

/// Lines of "<n> <ns>" (SQLite writer) or "<ns>" (heartbeat).
fn read_log(p: &Path) -> Vec<Vec<i128>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split(' ')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<i128>>>()
        })
        .collect()
}

/// Asserts that no beat was taken while the container was frozen, and that
/// beats resumed after the thaw.
fn assert_frozen_in_window(beats_file: &Path, ct: &Value) {
    let (requested, frozen, thaw, thawed) = window(ct);
    assert!(
        requested <= frozen && frozen <= thaw && thaw <= thawed,
        "{ct}"
    );
    // Let beats after the thaw accumulate.
    std::thread::sleep(Duration::from_millis(200));
    let beats: Vec<i128> = read_log(beats_file).into_iter().map(|v| v[0]).collect();
    let inside: Vec<i128> = beats
        .iter()
        .copied()
        .filter(|&b| b > frozen && b < thaw)
        .collect();
    assert!(
        inside.is_empty(),
        "{} beats while frozen ({frozen}..{thaw}): {inside:?}",
        inside.len()
    );
    assert!(
        beats.iter().any(|&b| b < requested),
        "no beat before the freeze"
    );
    assert!(
        beats.iter().any(|&b| b > thawed),
        "heartbeat did not resume after the thaw"
    );
    let freeze_ms = ct["freeze_ms"].as_f64().unwrap();
    let span_ms = (thawed - requested) as f64 / 1e6;
    assert!(
        (freeze_ms - span_ms).abs() < 5.0,
        "freeze_ms {freeze_ms} vs window {span_ms}"
    );
}

#[test]
fn sqlite_under_load_restores_consistent_prefix() {
    if !privileged()
        || !require("sqlite3", which("sqlite3"))
        || !require("python3", which("python3"))
    {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let private = vol.volume().join("db");
    std::fs::create_dir(&private).unwrap();
    let status = vol.dir.path().join("writer.status");
    let mut cg = TestCgroup::new(CgVersion::V2);
    let writer = workloads().join("sqlite_writer.py");
    cg.spawn(&[
        "python3",
        writer.to_str().unwrap(),
        private.join("app.db").to_str().unwrap(),
        status.to_str().unwrap(),
    ]);
    wait_for_lines(&status, 200);
    let env = Env::new(
        &vol.volume(),
        &[Ct {
            id: "db".into(),
            cgroup: cg.rel.clone(),
            private: private.clone(),
            config: None,
        }],
        "",
    );
    let m = env.backup_json(&["db"]);
    let ct = &m["containers"][0];
    assert_eq!(ct["result"], "ok", "{ct}");
    let (requested, _, _, thawed) = window(ct);
    // The writer went on after the backup.
    let before = std::fs::read_to_string(&status).unwrap().lines().count();
    wait_for_lines(&status, before + 50);

    let log = read_log(&status);
    let at_freeze = log
        .iter()
        .filter(|v| v[1] <= requested)
        .map(|v| v[0])
        .max()
        .unwrap_or(0);
    let after_thaw = log
        .iter()
        .filter(|v| v[1] >= thawed)
        .map(|v| v[0])
        .min()
        .expect("writer resumed");

    let out = vol.dir.path().join("restored");
    let (code, o, e) = env.run(&["restore", "db", "--to", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{o}{e}");
    let db = out.join("app.db");
    let q = |sql: &str| {
        sh(&format!("sqlite3 {} '{sql}'", db.display()))
            .trim()
            .to_owned()
    };
    assert_eq!(q("PRAGMA integrity_check"), "ok");
    let rows: i128 = q("SELECT count(*) FROM t").parse().unwrap();
    let max_id: i128 = q("SELECT max(id) FROM t").parse().unwrap();
    assert_eq!(rows, max_id, "rows are not a prefix 1..n");
    assert!(
        at_freeze <= rows && rows <= after_thaw,
        "restored {rows} rows; writer had {at_freeze} at freeze and {after_thaw} right after thaw"
    );
    assert!(rows > 100, "too few rows: {rows}");
}

#[test]
fn heartbeats_stop_only_inside_the_freeze_window_group_and_each() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let hb = workloads().join("heartbeat.py");
    let mut cgs = Vec::new();
    let mut cts = Vec::new();
    let mut beats = Vec::new();
    for id in ["a", "b", "c"] {
        let mut cg = TestCgroup::new(CgVersion::V2);
        let private = vol.volume().join(id);
        std::fs::create_dir(&private).unwrap();
        std::fs::write(private.join("data"), id.repeat(10_000)).unwrap();
        let f = vol.dir.path().join(format!("{id}.beats"));
        cg.spawn(&["python3", hb.to_str().unwrap(), f.to_str().unwrap()]);
        cts.push(Ct {
            id: id.into(),
            cgroup: cg.rel.clone(),
            private,
            config: None,
        });
        beats.push(f);
        cgs.push(cg);
    }
    for f in &beats {
        wait_for_lines(f, 20);
    }
    let env = Env::new(&vol.volume(), &cts, "");
    for strategy in ["group", "each"] {
        let m = env.backup_json(&["--all", "--strategy", strategy, "--jobs", "2"]);
        assert_eq!(m["strategy"], strategy);
        for (i, ct) in m["containers"].as_array().unwrap().iter().enumerate() {
            assert_eq!(ct["result"], "ok", "{ct}");
            assert_frozen_in_window(&beats[i], ct);
        }
        let ws: Vec<_> = m["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(window)
            .collect();
        if strategy == "each" {
            // One container at a time: the windows do not overlap.
            for p in ws.windows(2) {
                assert!(p[0].3 <= p[1].0, "windows overlap: {p:?}");
            }
        } else {
            // All at once: everyone was frozen together at some instant.
            let latest_frozen = ws.iter().map(|w| w.1).max().unwrap();
            assert!(
                ws.iter().all(|w| w.2 >= latest_frozen),
                "not one group window: {ws:?}"
            );
        }
        for cg in &cgs {
            assert!(!cg.is_frozen(), "left frozen");
        }
    }
    let (code, out, _) = env.run(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("ms)"), "list shows freeze windows: {out}");
    assert!(vol.snapshot_folder().is_empty());
}

#[test]
fn v1_freezer_really_freezes() {
    if !privileged()
        || !require("cgroup v1 freezer", cgroup_v1_freezer_root().is_some())
        || !require("python3", which("python3"))
    {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let mut cg = TestCgroup::new(CgVersion::V1);
    let private = vol.volume().join("v1");
    std::fs::create_dir(&private).unwrap();
    let f = vol.dir.path().join("v1.beats");
    cg.spawn(&[
        "python3",
        workloads().join("heartbeat.py").to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    wait_for_lines(&f, 20);
    // The v1 cgroup only exists in the freezer hierarchy: the runtime must
    // find it there (no cgroup of that name exists in v2).
    let env = Env::new(
        &vol.volume(),
        &[Ct {
            id: "v1".into(),
            cgroup: cg.rel.clone(),
            private,
            config: None,
        }],
        "",
    );
    let m = env.backup_json(&["v1"]);
    let ct = &m["containers"][0];
    assert_eq!(ct["result"], "ok", "{ct}");
    assert_frozen_in_window(&f, ct);
    assert!(!cg.is_frozen());
}
