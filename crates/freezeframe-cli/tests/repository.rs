//! The `repository` target: a restic-format repository written through
//! rustic_core, on local disk and on a real S3 server (SeaweedFS from
//! `../shared/testbed`), cross-checked with the `restic` program.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::restic::restic;
use common::tree::{as_repository_restores, assert_same, describe, Node};
use common::{
    local_repo_env_uninit, privileged, pw_file, repo_env_with, require, sh, which, workloads,
    CgVersion, Ct, Env, LoopBtrfs, TestCgroup,
};
use serde_json::Value;

/// Writes `n` files of `size` bytes of random data under `dir`.
fn random_files(dir: &Path, prefix: &str, n: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        sh(&format!(
            "head -c {size} /dev/urandom > {}/{prefix}{i:03}.bin",
            dir.display()
        ));
    }
}

/// A container's private area: random data, a large mostly empty disk
/// image (a part of its own: see `repo::split`), small files, a symlink,
/// and a `busy/` folder a running process appends to.
fn populate(private: &Path) {
    random_files(&private.join("data"), "blob", 48, 1 << 20);
    let img = private.join("data/disk.img");
    sh(&format!(
        "truncate -s 80M {0} && head -c 1048576 /dev/urandom | dd of={0} bs=1M seek=40 conv=notrunc status=none",
        img.display()
    ));
    let etc = private.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for i in 0..200 {
        std::fs::write(etc.join(format!("conf{i}")), format!("setting {i}\n")).unwrap();
    }
    std::os::unix::fs::symlink("conf1", etc.join("link")).unwrap();
    std::fs::create_dir_all(private.join("busy")).unwrap();
}

/// As a repository restore reproduces it, the busy folder left out on
/// request.
fn comparable(m: BTreeMap<Vec<u8>, Node>, skip_busy: bool) -> BTreeMap<Vec<u8>, Node> {
    let mut m = as_repository_restores(m);
    m.retain(|k, _| !(skip_busy && (k.starts_with(b"./busy") || k.starts_with(b"busy"))));
    m
}

/// `list --json`: the repository's freezeframe snapshots, oldest first.
fn snapshots(env: &Env) -> Vec<Value> {
    let (code, out, err) = env.run(&["list", "--json"]);
    assert_eq!(code, 0, "list: {err}");
    match serde_json::from_str(&out).unwrap() {
        Value::Array(v) => v,
        other => panic!("list --json is not an array: {other}"),
    }
}

/// (kept, forgotten) lines of `prune` output.
fn decisions(out: &str) -> (usize, usize) {
    let count = |p: &str| out.lines().filter(|l| l.starts_with(p)).count();
    (count("keep "), count("forget "))
}

fn ct_of(m: &Value, id: &str) -> Value {
    m["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {m}"))
        .clone()
}

/// The round trip both storage backends must pass: two runs of a busy
/// container, the second adding about the changed bytes; both restore
/// identically; restic lists, checks and restores the second run. Returns
/// the set-up for more runs.
fn two_runs_round_trip(
    vol: &LoopBtrfs,
    location: &str,
    restic_repo: &str,
    extra: &str,
    vars: &[(&str, &str)],
) -> (Env, TestCgroup) {
    let private = vol.volume().join("web");
    populate(&private);
    let cfg = vol.dir.path().join("web.conf");
    std::fs::write(&cfg, "ONBOOT=yes\n").unwrap();
    let mut cg = TestCgroup::new(CgVersion::V2);
    let log = private.join("busy/app.log");
    cg.spawn(&[
        "sh",
        workloads().join("log_appender.sh").to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    let env = repo_env_with(
        &vol.volume(),
        &[Ct {
            id: "web".into(),
            cgroup: cg.rel.clone(),
            private: private.clone(),
            config: Some(cfg.clone()),
        }],
        location,
        extra,
        vars,
    );
    let (code, out, err) = env.run(&["init"]);
    assert_eq!(code, 0, "init: {out}\n{err}");
    if location == "opendal:s3" {
        assert!(
            out.contains("honours conditional writes"),
            "SeaweedFS must honour If-None-Match before we rely on it: {out}\n{err}"
        );
    }
    let (code, _, err) = env.run(&["init"]);
    assert_eq!(code, 2, "a second init must refuse: {err}");
    assert!(err.contains("already exists"), "{err}");

    // Run 1.
    let before1 = comparable(describe(&private), true);
    let m1 = env.backup_json(&["web"]);
    let r1 = ct_of(&m1, "web");
    assert_eq!(r1["result"], "ok", "{r1}");
    let rec1 = &r1["repository"];
    let added1 = rec1["bytes_added"].as_u64().unwrap();
    assert!(added1 >= 48 << 20, "first run adds everything: {rec1}");
    assert!(r1["freeze_ms"].as_f64().is_some(), "{r1}");

    // Change ~1.6 MiB: rewrite part of a blob, append to another, add files.
    sh(&format!(
        "head -c 262144 /dev/urandom | dd of={} bs=4096 seek=100 conv=notrunc status=none",
        private.join("data/blob007.bin").display()
    ));
    sh(&format!(
        "head -c 524288 /dev/urandom >> {}",
        private.join("data/blob011.bin").display()
    ));
    random_files(&private.join("data/new"), "n", 2, 400 << 10);
    let changed: u64 = 262_144 + 524_288 + 2 * (400 << 10);
    let before2 = comparable(describe(&private), true);
    let m2 = env.backup_json(&["web"]);
    let r2 = ct_of(&m2, "web");
    assert_eq!(r2["result"], "ok", "{r2}");
    let rec2 = &r2["repository"];
    assert_eq!(
        rec2["parent"], rec1["snapshot"],
        "the parent is run 1: {rec2}"
    );
    let added2 = rec2["bytes_added"].as_u64().unwrap();
    // Content-defined chunks: each touched region costs at most a chunk or
    // two around it (≤ 8 MiB each), never the unchanged 48 MiB.
    assert!(
        added2 <= changed + 12 * (1 << 20) && added2 < added1 / 3,
        "run 2 added {added2} bytes for {changed} changed (run 1 added {added1}): {rec2}"
    );
    assert!(
        rec2["files_unchanged"].as_u64().unwrap() >= 240,
        "unchanged files are not re-read: {rec2}"
    );
    // Every file counted once, in both runs.
    let files = |r: &Value| -> u64 {
        ["files_new", "files_changed", "files_unchanged"]
            .iter()
            .map(|k| r[*k].as_u64().unwrap())
            .sum()
    };
    assert_eq!(files(rec2), files(rec1) + 2, "run 1: {rec1}\nrun 2: {rec2}");
    assert!(
        rec2["bytes_read"].as_u64().unwrap() < 8 << 20,
        "only changed files are read: {rec2}"
    );

    // freezeframe restores both runs.
    let run1 = m1["run"].as_str().unwrap();
    let run2 = m2["run"].as_str().unwrap();
    for (run, expect) in [(run1, &before1), (run2, &before2)] {
        let to = env.dir.path().join(format!("restore-{run}"));
        let (code, out, err) =
            env.run(&["restore", "web", "--run", run, "--to", to.to_str().unwrap()]);
        assert_eq!(code, 0, "restore {run}: {out}\n{err}");
        assert_same(
            &format!("run {run}"),
            expect,
            &comparable(describe(&to), true),
        );
        let conf = std::fs::read_to_string(format!("{}.conf", to.display())).unwrap();
        assert_eq!(conf, "ONBOOT=yes\n");
        // The busy log is a consistent prefix of what the writer has now.
        let now = std::fs::read_to_string(&log).unwrap();
        let got = std::fs::read_to_string(to.join("busy/app.log")).unwrap();
        assert!(
            !got.is_empty() && now.starts_with(&got),
            "busy log is not a prefix"
        );
    }

    // `list` shows both snapshots.
    let snaps = snapshots(&env);
    assert_eq!(snaps.len(), 2, "{snaps:?}");

    // restic sees the same repository.
    let out = restic(&env, restic_repo, &["snapshots", "--json"]);
    let rs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rs = rs.as_array().unwrap();
    assert_eq!(rs.len(), 2, "{rs:?}");
    let second = rs
        .iter()
        .find(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == &Value::String(format!("run:{run2}")))
        })
        .unwrap();
    let tags: Vec<&str> = second["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"freezeframe") && tags.contains(&"ct:web"),
        "{tags:?}"
    );
    assert_eq!(second["paths"][0], "/", "{second}");
    restic(&env, restic_repo, &["check", "--read-data"]);
    let rdir = env.dir.path().join("restic-restore");
    restic(
        &env,
        restic_repo,
        &[
            "restore",
            second["id"].as_str().unwrap(),
            "--target",
            rdir.to_str().unwrap(),
        ],
    );
    // The reserved folder holds the config; the rest is the container.
    assert_eq!(
        std::fs::read_to_string(rdir.join(".freezeframe/config")).unwrap(),
        "ONBOOT=yes\n"
    );
    std::fs::remove_dir_all(rdir.join(".freezeframe")).unwrap();
    let ours = env.dir.path().join(format!("restore-{run2}"));
    assert_same(
        "restic vs freezeframe restore of run 2",
        &comparable(describe(&rdir), false),
        &comparable(describe(&ours), false),
    );
    let (code, out, err) = env.run(&["verify", "--read-data"]);
    assert_eq!(code, 0, "verify: {out}\n{err}");
    assert!(out.contains("0 error(s)"), "{out}");
    (env, cg)
}

#[test]
fn local_repository_two_runs_restic_agrees() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let repo = vol.dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let (env, cg) = two_runs_round_trip(&vol, repo, repo, "", &[]);

    // A part snapshot left by a backup that died before merging (made here
    // with restic: same host and tags) is not listed, and the container's
    // next backup removes it.
    let tagged = |tag: &str| -> Vec<Value> {
        let out = restic(&env, repo, &["snapshots", "--json"]);
        let all: Value = serde_json::from_slice(&out.stdout).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag))
            .cloned()
            .collect()
    };
    let host = tagged("freezeframe")[0]["hostname"]
        .as_str()
        .unwrap()
        .to_owned();
    let leftover = env.dir.path().join("leftover");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("f"), "x").unwrap();
    restic(
        &env,
        repo,
        &[
            "backup",
            "-q",
            "--host",
            &host,
            "--tag",
            "freezeframe-part,ct:web,run:dead",
            leftover.to_str().unwrap(),
        ],
    );
    assert_eq!(tagged("freezeframe-part").len(), 1);
    assert_eq!(snapshots(&env).len(), 2, "part snapshots are not listed");
    let m3 = env.backup_json(&["web"]);
    assert_eq!(ct_of(&m3, "web")["result"], "ok", "{m3}");
    assert!(
        tagged("freezeframe-part").is_empty(),
        "leftover part removed"
    );
    // Nothing changed since run 2 but the busy log: no file is new, at
    // most the log's last chunk is added (repo_interop.rs checks a quiet
    // container adds no data blob at all).
    let rec3 = &ct_of(&m3, "web")["repository"];
    assert_eq!(rec3["files_new"], 0, "{rec3}");
    assert!(rec3["data_blobs_added"].as_u64().unwrap() <= 1, "{rec3}");
    assert_eq!(tagged("freezeframe").len(), 3);

    // An older config's `max_parts` still loads and changes nothing.
    env.edit(|c| {
        c.set("target.max_parts", 1);
    });
    let m4 = env.backup_json(&["web"]);
    assert_eq!(ct_of(&m4, "web")["result"], "ok", "{m4}");
    drop(cg);
}

#[test]
fn s3_repository_two_runs_restic_agrees() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let Some(s3) = common::s3::s3_repo() else {
        return;
    };
    let vol = LoopBtrfs::new("1G");
    let keys: Vec<(&str, &str)> = s3
        .keys
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (extra, restic_repo) = (s3.target.clone(), s3.restic.clone());
    two_runs_round_trip(&vol, "opendal:s3", &restic_repo, &extra, &keys);
}

#[test]
fn unreadable_file_makes_the_backup_partial() {
    if !privileged() || !require("setpriv", which("setpriv")) {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let private = vol.volume().join("app");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(private.join("ok.txt"), "fine\n").unwrap();
    let secret = private.join("secret.key");
    std::fs::write(&secret, "hidden\n").unwrap();
    common::unreadable(&secret);
    let (env, cg) = one_container(&vol, "app", &private);
    // Root without the capabilities that bypass file permissions: the
    // snapshot's mode-000 file cannot be read, as on a root-squashed mount.
    let out = common::bin::unprivileged(Some(&env.config))
        .args(["backup", "app"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "partial exits 3: {stdout}\n{stderr}"
    );
    assert!(
        format!("{stdout}{stderr}").contains("secret.key"),
        "the message names the file: {stdout}\n{stderr}"
    );
    assert!(!cg.is_frozen());
    let (code, out, err) = env.run(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("PARTIAL"),
        "the snapshot is marked partial: {out}"
    );
    let snaps = snapshots(&env);
    assert_eq!(snaps[0]["partial"], true, "{snaps:?}");
    assert!(
        snaps[0]["tags"]
            .as_array()
            .unwrap()
            .contains(&Value::String("partial".into())),
        "{snaps:?}"
    );
    let left = vol.leftovers(&[&env.state()]);
    assert!(left.is_empty(), "snapshot leaked: {left:?}");
}

/// One idle container `id` on `vol`, backed up into a new local repository.
fn one_container(vol: &LoopBtrfs, id: &str, private: &Path) -> (Env, TestCgroup) {
    let (env, cg) = one_container_no_init(vol, id, private);
    let (code, out, err) = env.run(&["init"]);
    assert_eq!(code, 0, "init: {out}\n{err}");
    (env, cg)
}

/// As [`one_container`], with the repository not created yet.
fn one_container_no_init(vol: &LoopBtrfs, id: &str, private: &Path) -> (Env, TestCgroup) {
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "600"]);
    let env = local_repo_env_uninit(
        &vol.volume(),
        &[Ct {
            id: id.into(),
            cgroup: cg.rel.clone(),
            private: private.to_owned(),
            config: None,
        }],
    );
    (env, cg)
}

#[test]
fn restore_into_a_full_file_system_fails_cleanly() {
    if !privileged() {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let private = vol.volume().join("big");
    random_files(&private.join("data"), "b", 12, 1 << 20);
    std::fs::write(private.join("small.txt"), "x\n").unwrap();
    let (env, cg) = one_container(&vol, "big", &private);
    env.backup_json(&["big"]);
    // A 4 MiB file system of our own, for 12 MiB of data.
    let small = env.dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=4m ff-test-small {}",
        small.display()
    ));
    let _unmount = common::Unmount(small.clone());
    let to = small.join("restored");
    let (code, out, err) = env.run(&["restore", "big", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 1, "a full disk is a failure (exit 1): {out}\n{err}");
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(
        err.contains("No space left") || err.contains("os error 28"),
        "the error says why: {err}"
    );
    assert_eq!(
        err.matches("os error 28").count(),
        1,
        "the cause once: {err}"
    );
    // Nothing outside the destination folder.
    let entries: Vec<String> = std::fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec!["restored".to_string()], "{entries:?}");
    drop(cg);
}

#[test]
fn prune_keeps_exactly_the_retained_snapshots() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "600"]);
    let ids = ["a", "b", "c"];
    let cts: Vec<Ct> = ids
        .iter()
        .map(|id| {
            let p = vol.volume().join(id);
            std::fs::create_dir_all(&p).unwrap();
            Ct {
                id: (*id).into(),
                cgroup: cg.rel.clone(),
                private: p,
                config: None,
            }
        })
        .collect();
    let env = local_repo_env_uninit(&vol.volume(), &cts);
    assert_eq!(env.run(&["init"]).0, 0);
    let mut runs = Vec::new();
    for run in 0..5 {
        for id in ids {
            random_files(&vol.volume().join(id), &format!("r{run}-"), 1, 256 << 10);
        }
        let m = env.backup_json(&["--all"]);
        runs.push(m["run"].as_str().unwrap().to_owned());
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(snapshots(&env).len(), 15);
    let (code, out, err) = env.run(&["prune", "--keep-last", "2", "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(decisions(&out), (6, 9), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(snapshots(&env).len(), 15, "a dry run changes nothing");

    let (code, out, err) = env.run(&["prune", "--keep-last", "2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let left = snapshots(&env);
    assert_eq!(left.len(), 6, "{left:?}");
    for id in ids {
        let mut kept: Vec<String> = left
            .iter()
            .filter(|s| s["container"] == id)
            .map(|s| s["run"].as_str().unwrap().to_owned())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            runs[3..].to_vec(),
            "container {id} keeps the newest two runs"
        );
    }
    let (code, out, err) = env.run(&["verify"]);
    assert_eq!(code, 0, "check stays clean: {out}\n{err}");
    let (code, out, err) = env.run(&["verify", "--read-data-subset", "1/2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("data subset 1/2 read"), "{out}");
    let (code, _, err) = env.run(&["verify", "--read-data-subset", "half"]);
    assert_eq!(code, 2, "a bad subset is a usage error: {err}");
    // One container only: the others are not considered.
    let (code, out, err) = env.run(&["prune", "--keep-last", "1", "--container", "a", "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(decisions(&out), (1, 1), "{out}");
    // A policy that keeps nothing, or an unknown container, is a usage
    // error, and nothing is forgotten.
    for args in [
        &["prune", "--keep-last", "0"][..],
        &["prune", "--keep-last", "0", "--keep-daily", "0"],
    ] {
        let (code, _, err) = env.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("keeps nothing"), "{err}");
    }
    let (code, _, err) = env.run(&["prune", "--keep-last", "1", "--container", "nosuch"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown container `nosuch`"), "{err}");
    assert_eq!(snapshots(&env).len(), 6, "nothing was forgotten");
    restic(
        &env,
        env.dir.path().join("repo").to_str().unwrap(),
        &["check"],
    );
    // The kept snapshots still restore.
    let to = env.dir.path().join("restore-c");
    let (code, _, err) = env.run(&[
        "restore",
        "c",
        "--run",
        &runs[3],
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(to.join("r3-000.bin").exists() && !to.join("r4-000.bin").exists());
    drop(cg);
}

#[test]
fn missing_repository_or_wrong_password_freezes_nothing() {
    if !privileged() {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let private = vol.volume().join("app");
    std::fs::create_dir_all(&private).unwrap();
    let (env, cg) = one_container_no_init(&vol, "app", &private);
    let (code, _, err) = env.run(&["backup", "app"]);
    assert_eq!(code, 4, "no repository yet: {err}");
    assert!(err.contains("freezeframe init"), "says what to do: {err}");
    assert_eq!(env.run(&["init"]).0, 0);
    std::fs::write(pw_file(&env), "not the password\n").unwrap();
    let (code, _, err) = env.run(&["backup", "app"]);
    assert_eq!(code, 4, "wrong password: {err}");
    assert!(err.contains("password"), "{err}");
    assert!(vol.snapshot_folder().is_empty() && !cg.is_frozen());
    assert!(
        env.target_entries().is_empty(),
        "no run folder: {:?}",
        env.target_entries()
    );
}

#[test]
fn sigterm_while_reading_leaves_no_snapshot_and_nothing_frozen() {
    if !privileged() {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let private = vol.volume().join("big");
    // Enough data that the signal lands while the files are being read.
    random_files(&private.join("data"), "b", 3, 96 << 20);
    let (env, cg) = one_container(&vol, "big", &private);
    let mut child = env
        .command()
        .args(["backup", "big"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while vol.snapshot_names().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no snapshot taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let t = std::time::Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    // It must stop promptly; a reader retrying forever would hang here.
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
            let _ = child.wait();
            panic!("backup did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(!cg.is_frozen());
    assert!(
        vol.snapshot_folder().is_empty(),
        "{:?}",
        vol.snapshot_folder()
    );
    let snaps = snapshots(&env);
    assert!(snaps.is_empty(), "no snapshot of a stopped run: {snaps:?}");
    let files = std::fs::read_dir(env.dir.path().join("repo/snapshots"))
        .unwrap()
        .count();
    assert_eq!(files, 0, "no part snapshot is left either");
    let (code, out, verr) = env.run(&["verify"]);
    assert_eq!(code, 0, "the repository stays consistent: {out}\n{verr}");
}

#[test]
fn a_damaged_pack_is_named_with_the_file_it_breaks() {
    if !privileged() {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let private = vol.volume().join("app");
    random_files(&private.join("data"), "b", 3, 3 << 20);
    let (env, cg) = one_container(&vol, "app", &private);
    env.backup_json(&["app"]);
    // Damage every data pack in its middle (tree packs are small).
    let packs = sh(&format!(
        "find {}/data -type f -size +1M",
        env.dir.path().join("repo").display()
    ));
    let packs: Vec<&str> = packs.lines().collect();
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        for x in &mut b[mid..mid + 64] {
            *x ^= 0xff;
        }
        std::fs::write(p, b).unwrap();
    }
    let to = env.dir.path().join("restored");
    let (code, out, err) = env.run(&["restore", "app", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let named = packs.iter().any(|p| {
        let id = Path::new(p).file_name().unwrap().to_str().unwrap();
        err.contains(&format!("pack {id}"))
    });
    assert!(
        named && err.contains("data/b") && err.contains("data blob"),
        "the pack and the file are named: {err}"
    );
    assert!(!err.contains("unexpected EOF"), "{err}");
    drop(cg);
}
