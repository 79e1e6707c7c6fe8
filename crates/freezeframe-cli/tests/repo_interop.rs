//! The every-file-type tree of the tar round trip through freezeframe's
//! repository writer, read by the other tools: two runs (the second after
//! edits) are listed, `check --read-data`-ed and restored by restic and
//! through rustic_core (`freezeframe restore`) alike; then restic backs up
//! into the same repository and prunes it, and everything still restores.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::restic::restic;
use common::tree::{as_repository_restores, assert_same, describe, Node};
use common::{privileged, require, sh, which};

/// The tree as both restores reproduce it: what restic records (no
/// hardlink identities, no holes, the root folder the destination's own),
/// without the socket (neither tool restores one).
fn restorable(p: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut m = as_repository_restores(describe(p));
    m.remove(&b"./sock"[..]);
    m
}

#[test]
fn every_file_type_round_trips_through_our_writer_and_restic() {
    if !privileged()
        || !require("restic", which("restic"))
        || !require("setfacl (acl)", which("setfacl"))
        || !require("setfattr (attr)", which("setfattr"))
    {
        return;
    }
    let (_vol, _cg, private, env) = common::repo_with_container("101");
    common::every_file_type(&private);
    let repo = env.dir.path().join("repo");
    let r = repo.to_str().unwrap();
    let m1 = env.backup_json(&["101"]);
    assert_eq!(m1["containers"][0]["result"], "ok", "{m1}");
    let run1 = restorable(&private);

    // Edits: content in the middle and at the end, a new file, a removed
    // one, a new mode and owner.
    sh(&format!(
        "cd {} && head -c 100000 /dev/urandom | dd of=big.bin bs=1 seek=1000000 conv=notrunc status=none \
         && echo more >> d/sub/f && echo new > added && rm empty && chmod 600 owned && chown 7:8 bigid",
        private.display()
    ));
    let m2 = env.backup_json(&["101"]);
    let run2 = m2["run"].as_str().unwrap().to_owned();
    let want = restorable(&private);

    // Nothing changed: no file read as new, not one data blob added.
    let m3 = env.backup_json(&["101"]);
    let rec3 = &m3["containers"][0]["repository"];
    assert_eq!(
        (
            rec3["files_new"].as_u64(),
            rec3["data_blobs_added"].as_u64()
        ),
        (Some(0), Some(0)),
        "an unchanged container adds no data: {rec3}"
    );
    assert!(rec3["files_unchanged"].as_u64().unwrap() >= 10, "{rec3}");

    // restic lists all three, reads every byte, restores the second run.
    let out = restic(&env, r, &["snapshots", "--json"]);
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 3, "{snaps}");
    restic(&env, r, &["check", "--read-data"]);
    let id2 = m2["containers"][0]["repository"]["snapshot"]
        .as_str()
        .unwrap();
    let by_restic = env.dir.path().join("by-restic");
    restic(
        &env,
        r,
        &["restore", id2, "--target", by_restic.to_str().unwrap()],
    );
    assert_same("restic restore of run 2", &want, &restorable(&by_restic));

    // freezeframe's restore (rustic_core reading) of both runs.
    let restore = |run: &str, to: &Path| {
        let (code, out, err) =
            env.run(&["restore", "101", "--run", run, "--to", to.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
    };
    let ours = env.dir.path().join("ours");
    restore(&run2, &ours);
    assert_same("freezeframe restore of run 2", &want, &restorable(&ours));
    let ours1 = env.dir.path().join("ours1");
    restore(m1["run"].as_str().unwrap(), &ours1);
    assert_same("freezeframe restore of run 1", &run1, &restorable(&ours1));

    // restic writes into the same repository and prunes it afterwards.
    let other = env.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("x"), "restic's own\n").unwrap();
    restic(
        &env,
        r,
        &[
            "backup",
            "-q",
            "--tag",
            "restic-own",
            other.to_str().unwrap(),
        ],
    );
    restic(&env, r, &["forget", "--tag", "restic-own"]);
    restic(&env, r, &["prune"]);
    restic(&env, r, &["check", "--read-data"]);
    let again = env.dir.path().join("again");
    restore(&run2, &again);
    assert_same("after restic's prune", &want, &restorable(&again));
    let again1 = env.dir.path().join("again1");
    restore(m1["run"].as_str().unwrap(), &again1);
    assert_same("run 1 after restic's prune", &run1, &restorable(&again1));
}
