//! Retention for tar targets: 3 containers × 8 runs with chosen times;
//! `prune` keeps exactly what the policy says (the same pure function the
//! library tests case by case), never the newest complete backup or an
//! incomplete run, changes nothing in a dry run, leaves `verify` clean, and
//! a prune killed halfway leaves every manifest valid.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{privileged, CgVersion, Ct, Env, LoopBtrfs, TestCgroup};
use serde_json::Value;

/// The run times, oldest first: two a day around a week boundary.
const TIMES: [&str; 8] = [
    "2026-11-01T10:00:00Z", // Sunday, ISO week 44
    "2026-11-02T09:00:00Z", // Monday, week 45
    "2026-11-02T18:00:00Z",
    "2026-11-03T09:00:00Z",
    "2026-11-03T21:00:00Z",
    "2026-11-09T09:00:00Z", // week 46
    "2026-11-10T09:00:00Z",
    "2026-11-10T21:00:00Z",
];

struct Bed {
    _cg: TestCgroup,
    env: Env,
    _vol: LoopBtrfs,
    /// Run ids, in the order of TIMES.
    runs: Vec<String>,
}

fn manifest_path(env: &Env, run: &str) -> std::path::PathBuf {
    env.target.join(run).join("manifest.json")
}

fn edit_manifest(env: &Env, run: &str, f: impl FnOnce(&mut Value)) {
    let p = manifest_path(env, run);
    let mut m: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Eight runs of three containers, their start times set to TIMES.
fn bed() -> Bed {
    let vol = LoopBtrfs::new("512M");
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "1000"]);
    let cts: Vec<Ct> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let p = vol.volume().join(id);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("data"), id.repeat(1000)).unwrap();
            Ct {
                id: (*id).into(),
                cgroup: cg.rel.clone(),
                private: p,
                config: None,
            }
        })
        .collect();
    let env = Env::new(&vol.volume(), &cts, "");
    let mut runs = Vec::new();
    for t in TIMES {
        let m = env.backup_json(&["--all"]);
        let run = m["run"].as_str().unwrap().to_owned();
        edit_manifest(&env, &run, |m| m["started_at"] = t.into());
        runs.push(run);
    }
    Bed {
        _cg: cg,
        env,
        _vol: vol,
        runs,
    }
}

/// The (run, container) pairs whose archive is still there.
fn archives(b: &Bed) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for (i, run) in b.runs.iter().enumerate() {
        for id in ["a", "b", "c"] {
            if b.env
                .target
                .join(run)
                .join(format!("{id}.tar.zst"))
                .exists()
            {
                out.insert((i, id.to_owned()));
            }
        }
    }
    out
}

fn all(runs: &[usize], ids: &[&str]) -> BTreeSet<(usize, String)> {
    runs.iter()
        .flat_map(|r| ids.iter().map(move |id| (*r, (*id).to_owned())))
        .collect()
}

fn prune(b: &Bed, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["prune"];
    a.extend_from_slice(args);
    b.env.run(&a)
}

fn verify_clean(b: &Bed) {
    let (code, out, err) = b.env.run(&["verify"]);
    assert_eq!(code, 0, "verify after prune: {out}{err}");
}

#[test]
fn prune_keeps_exactly_what_the_policy_keeps() {
    if !privileged() {
        return;
    }
    for (args, kept_runs) in [
        // The newest of each of the last 2 days (11-10 21:00, 11-09), and
        // of each of the last weeks: weeks 46 (kept already) and 45.
        (
            &["--keep-daily", "2", "--keep-weekly", "2"][..],
            vec![7, 5, 4],
        ),
        (&["--keep-last", "3"], vec![7, 6, 5]),
        (&["--keep-hourly", "2"], vec![7, 6]),
        (&["--keep-monthly", "1"], vec![7]),
    ] {
        let b = bed();
        let before = archives(&b);
        assert_eq!(before.len(), 24);
        let (code, out, err) = prune(&b, &[args, &["--dry-run"]].concat());
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(out.contains("dry run: nothing was changed"), "{out}");
        assert_eq!(archives(&b), before, "{args:?}: a dry run changes nothing");
        let (code, out, err) = prune(&b, &[args, &["--json"]].concat());
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            report["decisions"].as_array().unwrap().len(),
            24,
            "{report}"
        );
        assert_eq!(
            archives(&b),
            all(&kept_runs, &["a", "b", "c"]),
            "{args:?}: {out}"
        );
        // Run folders with nothing left are gone; the others verify.
        for (i, run) in b.runs.iter().enumerate() {
            assert_eq!(
                b.env.target.join(run).exists(),
                kept_runs.contains(&i),
                "{args:?}: run {i}"
            );
        }
        verify_clean(&b);
    }
}

#[test]
fn the_newest_complete_backup_and_incomplete_runs_survive_any_policy() {
    if !privileged() {
        return;
    }
    let b = bed();
    // The newest run's backup of `a` is partial: `a`'s newest complete
    // backup is then in run 6.
    edit_manifest(&b.env, &b.runs[7], |m| {
        m["containers"][0]["result"] = "partial".into();
    });
    // An incomplete run (no manifest) sits among the old ones.
    let incomplete = b.env.target.join("2026-11-01T000000Z-h");
    std::fs::create_dir(&incomplete).unwrap();
    std::fs::write(incomplete.join("a.tar.zst"), "half").unwrap();
    let (code, out, err) = prune(&b, &["--keep-last", "1", "--container", "a"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("keep")
            && l.contains(&b.runs[6])
            && l.contains("newest complete")),
        "{out}"
    );
    let a: BTreeSet<usize> = archives(&b)
        .into_iter()
        .filter(|(_, id)| id == "a")
        .map(|(r, _)| r)
        .collect();
    assert_eq!(
        a,
        [6, 7].into(),
        "the partial newest (last) and the newest complete"
    );
    // Only `a` was considered.
    assert_eq!(archives(&b).iter().filter(|(_, id)| id == "b").count(), 8);
    assert!(
        incomplete.join("a.tar.zst").exists(),
        "an incomplete run is never touched"
    );
    // A policy that keeps nothing, and an unknown container: usage errors.
    assert_eq!(prune(&b, &["--keep-last", "0"]).0, 2);
    assert_eq!(
        prune(&b, &["--keep-last", "1", "--container", "nosuch"]).0,
        2
    );
}

#[test]
fn a_prune_killed_halfway_leaves_every_manifest_valid() {
    if !privileged() {
        return;
    }
    let b = bed();
    let out = b
        .env
        .cmd()
        .args(["prune", "--keep-last", "2"])
        .env("FREEZEFRAME_FAULT", "mid-prune")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "killed at the fault point");
    // Every manifest still reads, and describes files that exist.
    verify_clean(&b);
    // The next prune finishes the job.
    let (code, out, err) = prune(&b, &["--keep-last", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(archives(&b), all(&[6, 7], &["a", "b", "c"]));
    let leftovers: Vec<String> = std::fs::read_dir(&b.env.target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ff-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Files a run no longer lists are gone too.
    for run in &b.runs[..6] {
        assert!(!Path::new(&b.env.target.join(run)).exists(), "{run}");
    }
    verify_clean(&b);
}

#[test]
fn backup_prune_applies_the_configured_retention() {
    if !privileged() {
        return;
    }
    let b = bed();
    b.env.edit(|c| {
        c.set("retention.keep_last", 2);
    });
    let (code, out, err) = b.env.run(&["backup", "--all", "--prune"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("forget"), "{out}");
    // The new run and run 7 stay.
    assert_eq!(archives(&b), all(&[7], &["a", "b", "c"]));
    // `prune` with no rules on the command line uses [retention] too.
    let (code, out, err) = b.env.run(&["prune", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    b.env.edit(|c| {
        c.set("retention.keep_last", 0);
    });
    let (code, _, err) = b.env.run(&["prune"]);
    assert_eq!(
        code, 2,
        "a [retention] that keeps nothing is a config error: {err}"
    );
    assert!(err.contains("[retention] keeps nothing"), "{err}");
}
