//! Repository locks as restic keeps them: while freezeframe writes a
//! backup, `restic prune` refuses; while restic holds a lock, `freezeframe
//! prune` refuses (exit 5, naming the holder); a killed backup's lock is
//! removed by `recover`; afterwards both tools check, prune and restore.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::restic::{command as restic_cmd, restic};
use common::{kill9, privileged, require, which};

/// Lock files in the repository at `repo`.
fn locks(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join("locks"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn prune_and_backup_exclude_each_other_through_restic_locks() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let (_vol, _cg, private, env) = common::repo_with_container("web");
    std::fs::write(private.join("a"), "first\n").unwrap();
    let repo = env.dir.path().join("repo");
    let r = repo.to_str().unwrap();
    env.backup_json(&["web"]);
    assert!(locks(&repo).is_empty(), "a finished backup leaves no lock");

    // 1. A backup holds its lock while it writes (held here by a fault
    // point): restic prune refuses and names it; nothing is removed.
    std::fs::write(private.join("b"), "second\n").unwrap();
    let mut child = env.spawn(&["backup", "web"], Some("mid-archive:hang=60s"));
    wait_for("the backup's lock", || !locks(&repo).is_empty());
    let out = restic_cmd(&env, r, &["prune"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "restic prune ran beside a backup: {err}"
    );
    assert!(
        err.contains("locked") && err.contains(&child.id().to_string()),
        "restic names the backup's lock: {err}"
    );

    // 2. Killed while holding it: `recover` removes this host's dead lock.
    kill9(child.id());
    let _ = child.wait();
    assert_eq!(locks(&repo).len(), 1, "a killed backup leaves its lock");
    let (code, out, err) = env.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(locks(&repo).is_empty(), "recover removed it: {out}{err}");
    assert!(err.contains("lock file"), "recover says so: {err}");

    // 3. restic holds a lock (a backup reading a slow stdin): freezeframe
    // prune refuses with exit 5 and names restic's PID; a dry run is fine.
    let mut holder = restic_cmd(&env, r, &["backup", "--stdin", "--stdin-filename", "slow"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("restic's lock", || !locks(&repo).is_empty());
    let (code, out, err) = env.run(&["prune", "--keep-last", "1"]);
    assert_eq!(code, 5, "prune beside restic's lock: {out}{err}");
    assert!(
        err.contains("locked") && err.contains(&format!("PID {}", holder.id())),
        "the holder is named: {err}"
    );
    let (code, out, err) = env.run(&["prune", "--keep-last", "1", "--dry-run"]);
    assert_eq!(code, 0, "a dry run decides only: {out}{err}");
    let mut stdin = holder.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"restic's own data\n").unwrap();
    drop(stdin);
    let out = holder.wait_with_output().unwrap();
    assert!(out.status.success(), "restic's backup ended well: {out:?}");
    assert!(locks(&repo).is_empty());

    // 4. Afterwards both tools agree: freezeframe backs up and prunes,
    // restic prunes and checks, the last backup restores.
    env.backup_json(&["web"]);
    let (code, out, err) = env.run(&["prune", "--keep-last", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    restic(&env, r, &["prune"]);
    restic(&env, r, &["check", "--read-data"]);
    let to = env.dir.path().join("restored");
    let (code, out, err) = env.run(&["restore", "web", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read_to_string(to.join("b")).unwrap(), "second\n");
    assert!(locks(&repo).is_empty(), "no lock is left");
}

/// The run reads the repository's index ahead, while it freezes and
/// snapshots; a `restic prune` that runs after that and before the
/// backup takes its lock (here from the container's `backup-start` hook)
/// replaces the index and removes the blobs of a forgotten snapshot. The
/// backup notices under its lock and reads the index again: it stores
/// those blobs itself instead of naming ones that are gone.
#[test]
fn a_prune_after_the_index_was_read_ahead_is_noticed_under_the_lock() {
    if !privileged() || !require("restic", which("restic")) {
        return;
    }
    let (_vol, _cg, private, env) = common::repo_with_container("web");
    // Several chunks' worth that only the first snapshot holds.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(private.join("big"), &data).unwrap();
    let repo = env.dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let first = env.backup_json(&["web"]);
    let blobs = first["containers"][0]["repository"]["data_blobs_added"].clone();
    let first = first["containers"][0]["repository"]["snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    restic(&env, r, &["forget", &first]);
    let prune = env.dir.path().join("prune.sh");
    let cmd = restic_cmd(&env, r, &["prune"]);
    let envs: String = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}='{}' ", k.to_str()?, v?.to_str()?)))
        .collect();
    std::fs::write(
        &prune,
        format!("sleep 1\n{envs}restic -r '{r}' prune > /dev/null\n"),
    )
    .unwrap();
    env.edit(|c| {
        c.merge(&format!(
            "[hooks]\ntimeout = \"120s\"\nbackup-start = \"sh {}\"\n",
            prune.display()
        ));
    });

    let m = env.backup_json(&["web"]);
    let c = &m["containers"][0]["repository"];
    assert_eq!(
        c["data_blobs_added"], blobs,
        "the pruned blobs were stored again: {c}"
    );
    restic(&env, r, &["check", "--read-data"]);
    let to = env.dir.path().join("restored");
    let (code, out, err) = env.run(&["restore", "web", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::read(to.join("big")).unwrap() == data, "restored");
}
