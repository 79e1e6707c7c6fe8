//! Exclude patterns (issue 15): the config's `exclude` and `backup
//! --exclude` leave out exactly the matching entries, in tar and
//! repository targets alike; the manifest counts what each pattern
//! skipped; a restore gives back everything else unchanged.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::tree::{as_repository_restores, assert_same, describe, Node};
use common::{local_repo_env, privileged, Ct, Env};
use serde_json::{json, Value};

const PATTERNS: [&str; 3] = ["var/cache/**", "tmp/*", "*.swp"];

/// A tree with entries each pattern must skip and near misses it must keep.
fn tree(p: &Path) {
    let f = |rel: &[u8], body: &str| {
        let path = p.join(std::ffi::OsStr::from_bytes(rel));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    f(b"var/cache/apt/archives/a.deb", "deb");
    f(b"var/cache/x", "x");
    f(b"var/lib/cache/kept", "anchored: not var/cache");
    f(b"srv/var/cache/kept", "anchored: not at the root");
    f(b"tmp/a", "a");
    f(b"tmp/sub/b", "b");
    f(b"home/u/.f.swp", "swap");
    f(b"home/u/keep.txt", "keep");
    f(b"home/u/notes.swp.txt", "not a .swp");
    f(b"caf\xe9.swp", "latin-1 name");
    f(b"x.swp/inside", "below a folder the pattern names");
    f(b"home/u/big/blob", "cli");
    f(b"home/u/big.txt", "a file: `big/` matches folders only");
    std::os::unix::fs::symlink("tmp/a", p.join("link.swp")).unwrap();
}

/// What must be left out (with everything below it).
const SKIPPED: [&[u8]; 8] = [
    b"./var/cache/apt",
    b"./var/cache/x",
    b"./tmp/a",
    b"./tmp/sub",
    b"./home/u/.f.swp",
    b"./caf\xe9.swp",
    b"./x.swp",
    b"./home/u/big",
];

fn expected(source: &BTreeMap<Vec<u8>, Node>) -> BTreeMap<Vec<u8>, Node> {
    let mut m = source.clone();
    m.retain(|k, _| {
        !SKIPPED
            .iter()
            .any(|s| k == s || (k.starts_with(s) && k.get(s.len()) == Some(&b'/')))
            && k != b"./link.swp"
    });
    m
}

fn counts(ct: &Value) -> Value {
    ct["tree"]["excluded"].clone()
}

#[test]
fn excludes_skip_exactly_the_matching_entries_in_both_targets() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    tree(&private);
    let ct = || Ct::new("101", &cg, &private);
    let source = describe(&private);
    let want = expected(&source);
    assert_eq!(source.len() - want.len(), 14, "the fixture itself");
    for (kind, env) in [
        ("tar", Env::new(&vol.volume(), &[ct()], "")),
        ("repository", local_repo_env(&vol.volume(), &[ct()])),
    ] {
        env.edit(|c| {
            c.set(
                "container.0.exclude",
                toml::Value::try_from(PATTERNS).unwrap(),
            );
        });
        let (code, plan, err) =
            env.run(&["backup", "--all", "--dry-run", "--exclude", "home/u/big/"]);
        assert_eq!(code, 0, "{plan}{err}");
        assert!(
            plan.contains("excluding: var/cache/** tmp/* *.swp home/u/big/"),
            "{plan}"
        );
        let m = env.backup_json(&["--all", "--exclude", "home/u/big/"]);
        let c = &m["containers"][0];
        assert_eq!(c["result"], "ok", "{kind}: {c}");
        assert_eq!(
            counts(c),
            json!([
                {"pattern": "var/cache/**", "skipped": 2},
                {"pattern": "tmp/*", "skipped": 2},
                {"pattern": "*.swp", "skipped": 4},
                {"pattern": "home/u/big/", "skipped": 1},
            ]),
            "{kind}: {c}"
        );
        let out = env.dir.path().join("restored");
        let (code, o, e) = env.run(&["restore", "101", "--to", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{kind}: {o}{e}");
        let got = describe(&out);
        if kind == "tar" {
            assert_same(kind, &want, &got);
        } else {
            assert_same(
                kind,
                &as_repository_restores(want.clone()),
                &as_repository_restores(got),
            );
        }
    }
}

#[test]
fn bad_patterns_are_refused_before_anything_is_frozen() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    let env = Env::new(&vol.volume(), &[Ct::new("101", &cg, &private)], "");
    let (code, _, err) = env.run(&["backup", "--all", "--exclude", "../etc"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--exclude: exclude pattern `../etc`"), "{err}");
    env.edit(|c| {
        c.set(
            "container.0.exclude",
            toml::Value::try_from(["# a comment"]).unwrap(),
        );
    });
    let (code, _, err) = env.run(&["backup", "--all"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("container `101`: exclude pattern `# a comment`"),
        "{err}"
    );
    assert!(std::fs::read_dir(&env.target).map_or(true, |mut d| d.next().is_none()));
    assert!(vol.snapshot_folder().is_empty());
}
