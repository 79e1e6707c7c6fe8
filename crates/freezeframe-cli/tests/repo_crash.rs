//! Crash consistency of the repository writer: a backup killed with
//! SIGKILL at ten instants while it writes (packs, index files, trees,
//! the snapshot file) leaves at worst data no snapshot refers to. After
//! each kill and `recover`, restic's `check` passes and every earlier
//! snapshot restores; afterwards the next backup and a prune succeed and
//! `check --read-data` is clean. A full repository disk fails a backup
//! cleanly, and the next one, with room again, works.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::restic::restic;
use common::tree::{as_repository_restores as restorable, assert_same, describe, Node};
use common::{kill9, privileged, require, which};

/// `n` files `f0`… of `size` pseudo-random bytes (seeded) under `dir`.
fn files(dir: &std::path::Path, seed: u64, n: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..n {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i}")), data).unwrap();
    }
}

#[test]
fn a_backup_killed_anywhere_while_writing_leaves_the_repository_good() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let (_vol, _cg, private, env) = common::repo_with_container("db");
    files(&private.join("base"), 1, 4, 8 << 20);
    let repo = env.dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let first = env.backup_json(&["db"]);
    let first_run = first["run"].as_str().unwrap().to_owned();
    let first_tree = restorable(describe(&private));

    // Kill instants spread over the write: 0–600 ms after the backup took
    // its repository lock (the first thing it writes); each run has 48 MiB
    // of new data to store.
    let mut mid_write = 0;
    for k in 0..10u64 {
        files(&private.join("new"), 100 + k, 3, 16 << 20);
        let mut child = env.spawn(&["backup", "db"], None);
        let t = Instant::now();
        let locked = || std::fs::read_dir(repo.join("locks")).is_ok_and(|mut d| d.next().is_some());
        while !locked() && child.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(30), "no lock taken");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(k * 997 % 600));
        kill9(child.id());
        if child.wait().unwrap().signal() == Some(9) {
            mid_write += 1;
        }
        let (code, out, err) = env.run(&["recover"]);
        assert_eq!(code, 0, "kill {k}: recover: {out}{err}");
        // restic: no error (packs no snapshot uses are only a hint).
        restic(&env, r, &["check"]);
        let to = env.dir.path().join(format!("restore-{k}"));
        assert_restores(&env, &first_run, &to, &format!("kill {k}"), &first_tree);
        std::fs::remove_dir_all(&to).unwrap();
    }

    assert!(
        mid_write >= 4,
        "only {mid_write} of 10 kills landed before the end"
    );

    // The next backup, a prune and a full check.
    let last = env.backup_json(&["db"]);
    let (code, out, err) = env.run(&["prune", "--keep-last", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    restic(&env, r, &["prune"]);
    restic(&env, r, &["check", "--read-data"]);
    let to = env.dir.path().join("restore-last");
    let run = last["run"].as_str().unwrap();
    assert_restores(
        &env,
        run,
        &to,
        "after the kills",
        &restorable(describe(&private)),
    );
}

/// Restores run `run` of container `db` into `to` (which must succeed)
/// and checks it holds `want`.
fn assert_restores(
    env: &common::Env,
    run: &str,
    to: &std::path::Path,
    what: &str,
    want: &BTreeMap<Vec<u8>, Node>,
) {
    let (code, out, err) = env.run(&["restore", "db", "--run", run, "--to", to.to_str().unwrap()]);
    assert_eq!(code, 0, "{what}: restoring run {run}: {out}{err}");
    assert_same(what, want, &restorable(describe(to)));
}

#[test]
fn a_full_repository_disk_fails_the_backup_cleanly_and_the_next_one_works() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("db");
    files(&private.join("data"), 7, 4, 4 << 20);
    let env = common::local_repo_env_uninit(
        &vol.volume(),
        &[common::Ct {
            id: "db".into(),
            cgroup: cg.rel.clone(),
            private: private.clone(),
            config: None,
        }],
    );
    // The repository on a 6 MiB file system of our own, for 16 MiB of
    // data that does not compress.
    let small = env.dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    common::sh(&format!(
        "mount -t tmpfs -o size=6m ff-test-repo {}",
        small.display()
    ));
    let _unmount = common::Unmount(small.clone());
    let repo = small.join("repo");
    env.edit(|c| {
        c.set("target.repository", common::config::path(&repo));
    });
    let (code, out, err) = env.run(&["init"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = env.run(&["backup", "db"]);
    assert_eq!(
        code, 1,
        "a full repository disk fails the backup: {out}{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("No space left") || err.contains("os error 28"),
        "the error says why: {err}"
    );
    assert_failed_cleanly(&env, &repo, &vol, &cg);

    // Room again: the next backup works, restic agrees, it restores.
    common::sh(&format!("mount -o remount,size=64m {}", small.display()));
    assert_next_backup_restores(&env, &repo, &private, "after the full disk");
}

/// After a failed backup: the repository has no snapshot, nothing stays
/// frozen, and no btrfs snapshot or repository lock is left.
fn assert_failed_cleanly(
    env: &common::Env,
    repo: &std::path::Path,
    vol: &common::LoopBtrfs,
    cg: &common::TestCgroup,
) {
    let out = restic(env, repo.to_str().unwrap(), &["snapshots", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "no snapshot"
    );
    assert!(!cg.is_frozen(), "nothing stays frozen");
    assert!(vol.snapshot_names().is_empty(), "no snapshot is left");
    assert!(
        std::fs::read_dir(repo.join("locks")).is_ok_and(|mut d| d.next().is_none()),
        "no lock is left"
    );
}

/// The next backup of `db` works, restic reads all of it, and it
/// restores `private` as it is now.
fn assert_next_backup_restores(
    env: &common::Env,
    repo: &std::path::Path,
    private: &std::path::Path,
    what: &str,
) {
    let m = env.backup_json(&["db"]);
    restic(env, repo.to_str().unwrap(), &["check", "--read-data"]);
    let to = env.dir.path().join("restored");
    let run = m["run"].as_str().unwrap();
    assert_restores(env, run, &to, what, &restorable(describe(private)));
}

#[test]
fn a_disk_that_fills_while_an_index_or_snapshot_file_is_written_leaves_no_torn_file() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let (vol, cg, private, env) = common::repo_with_container("db");
    files(&private.join("data"), 11, 3, 1 << 20);
    let repo = env.dir.path().join("repo");
    let r = repo.to_str().unwrap();
    for folder in ["index", "snapshots"] {
        // The folder on a one-page file system of its own, already full:
        // everything else fits, the file written there does not.
        let dir = repo.join(folder);
        common::sh(&format!(
            "mount -t tmpfs -o size=4k ff-test-{folder} {}",
            dir.display()
        ));
        let unmount = common::Unmount(dir.clone());
        std::fs::write(dir.join("filler"), vec![0u8; 4096]).unwrap();
        let (code, out, err) = env.run(&["backup", "db"]);
        assert_eq!(code, 1, "{folder} full: the backup fails: {out}{err}");
        assert!(!err.contains("panicked"), "{err}");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["filler"],
            "{folder}: no file, whole or torn, is left there"
        );
        // restic reads the repository as it is: the files that were
        // written are whole.
        std::fs::remove_file(dir.join("filler")).unwrap();
        restic(&env, r, &["check"]);
        assert_failed_cleanly(&env, &repo, &vol, &cg);
        drop(unmount);
    }
    // Room again: the next backup works and restores.
    assert_next_backup_restores(&env, &repo, &private, "after the full folders");
}
