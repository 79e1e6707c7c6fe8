//! Reading only what changed (DESIGN.md §7), on real btrfs with real
//! `btrfs send`: a repository run keeps its snapshot as the base of the
//! next; the next run reads changed files only around the kernel's ranges,
//! and what it stores is exactly what a full read stores (same trees, so
//! the same blob lists), restorable byte for byte. A base that is gone,
//! not the one the parent was read from, or replaced half-way by a
//! SIGKILL, makes the run fall back to reading changed files whole.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::restic::restic;
use common::tree::{as_repository_restores, assert_same, describe};
use common::CgVersion;
use common::{
    local_repo_env, privileged, require, sh, wait_for_lines, which, workloads, Ct, Env, LoopBtrfs,
    TestCgroup,
};
use serde_json::Value;

/// A container with files of every kind of change to come.
fn populate(p: &Path) {
    sh(&format!(
        "cd {p} && head -c 16777216 /dev/urandom > big && head -c 8388608 /dev/zero >> big \
         && head -c 8388608 /dev/urandom > db && head -c 4194304 /dev/urandom > holey \
         && head -c 6291456 /dev/urandom > ins && seq 1 400000 > log \
         && mkdir -p etc && for i in $(seq 1 40); do echo conf $i > etc/c$i; done \
         && echo h > hard && ln hard hard2 && echo m > moved && sync",
        p = p.display()
    ));
}

/// Overwrites, an append, a truncation, a punched hole, an insert that
/// shifts data, a rename, a hard-linked file written, a mode change.
fn edit(p: &Path) {
    sh(&format!(
        "cd {p} && for s in 100 1500 3000; do dd if=/dev/urandom of=big bs=4096 seek=$s count=2 conv=notrunc status=none; done \
         && seq 1 50000 >> log && truncate -s 6000000 db \
         && fallocate --punch-hole -o 1048576 -l 65536 holey \
         && python3 -c \"d=open('ins','rb').read(); d=d[:2000000]+b'inserted'*100+d[2000000:]; f=open('ins','r+b'); f.write(d); f.close()\" \
         && if [ -e moved ]; then mv moved moved2; else mv moved2 moved; fi \
         && echo more >> hard && chmod 600 etc/c1 && sync",
        p = p.display()
    ));
}

struct Setup {
    vol: LoopBtrfs,
    _cg: TestCgroup,
    private: PathBuf,
}

fn setup() -> Option<Setup> {
    if !privileged()
        || !require("btrfs send", which("btrfs"))
        || !require("restic", which("restic"))
    {
        return None;
    }
    let vol = LoopBtrfs::new("1G");
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "1000"]);
    let private = vol.volume().join("ct1");
    std::fs::create_dir(&private).unwrap();
    populate(&private);
    Some(Setup {
        vol,
        _cg: cg,
        private,
    })
}

fn env_for(s: &Setup, keep_base: bool) -> Env {
    // A config beside the tree (not on the volume), like every runtime's.
    let conf = s.vol.dir.path().join("ct1.conf");
    std::fs::write(&conf, "hostname=ct1\n").unwrap();
    let env = local_repo_env(
        &s.vol.volume(),
        &[Ct {
            id: "ct1".into(),
            cgroup: s._cg.rel.clone(),
            private: s.private.clone(),
            config: Some(conf),
        }],
    );
    if !keep_base {
        env.edit(|c| {
            c.set("volume.0.keep_base", false);
        });
    }
    env
}

fn repo_of(env: &Env) -> String {
    env.dir.path().join("repo").display().to_string()
}

/// The repository record of the run's only container.
fn record(m: &Value) -> Value {
    m["containers"][0]["repository"].clone()
}

/// The root tree of a repository snapshot, as restic reads it.
fn tree_of(env: &Env, snapshot: &str) -> String {
    let out = restic(env, &repo_of(env), &["cat", "snapshot", snapshot]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tree"].as_str().unwrap().to_owned()
}

/// Every node below tree `tree`, by path, without `device_id`.
fn nodes(env: &Env, tree: &str, at: &str) -> Vec<(String, Value)> {
    let out = restic(env, &repo_of(env), &["cat", "blob", tree]);
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut all = Vec::new();
    for n in t["nodes"].as_array().unwrap() {
        let mut n = n.clone();
        let path = format!("{at}/{}", n["name"].as_str().unwrap());
        n.as_object_mut().unwrap().remove("device_id");
        if path.starts_with("/.freezeframe") {
            // Written by each run beside the tree: its times are the run's.
            n.as_object_mut().unwrap().remove("mtime");
        }
        let sub = n.as_object_mut().unwrap().remove("subtree");
        all.push((path.clone(), n));
        if let Some(Value::String(sub)) = sub {
            all.extend(nodes(env, &sub, &path));
        }
    }
    all
}

/// The snapshot the state dir keeps as the base, if any.
fn base_name(env: &Env) -> Option<String> {
    let text = std::fs::read_to_string(env.state().join("bases.json")).ok()?;
    let v: Value = serde_json::from_str(&text).unwrap();
    let b = v["bases"].as_object()?.values().next()?.clone();
    Some(b["snapshot"]["name"].as_str()?.to_owned())
}

/// Restores the newest backup and compares it with the source.
fn restores_identically(env: &Env, s: &Setup, what: &str) {
    let to = env.dir.path().join(format!("restore-{what}"));
    let (code, out, err) = env.run(&["restore", "ct1", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 0, "{what}: restore: {out}{err}");
    assert_same(
        what,
        &as_repository_restores(describe(&s.private)),
        &as_repository_restores(describe(&to)),
    );
    // And restic reads the same.
    let rto = env.dir.path().join(format!("restic-{what}"));
    restic(
        env,
        &repo_of(env),
        &["restore", "latest", "--target", rto.to_str().unwrap()],
    );
    sh(&format!(
        "cd {} && cmp big {r}/big && cmp db {r}/db && cmp ins {r}/ins && cmp log {r}/log && cmp holey {r}/holey",
        s.private.display(),
        r = rto.display()
    ));
}

#[test]
fn the_extent_path_stores_exactly_what_a_full_read_stores() {
    let Some(s) = setup() else { return };
    let a = env_for(&s, true);
    let b = env_for(&s, false);
    let first = record(&a.backup_json(&["ct1"]));
    assert!(first.get("extents").is_none(), "{first}");
    b.backup_json(&["ct1"]);
    let base1 = base_name(&a).expect("a base kept by the first run");
    assert_eq!(
        s.vol.snapshot_names(),
        std::slice::from_ref(&base1),
        "only A's base is left"
    );
    assert!(base_name(&b).is_none());

    edit(&s.private);
    let m = a.backup_json(&["ct1"]);
    let r = record(&m);
    let e = &r["extents"];
    assert!(e["not_used"].is_null(), "{e}");
    // big, db, holey, ins, log and etc/c1 (its mode only) cut around
    // their changes; both names of the hard-linked file read whole, with
    // the reason.
    assert_eq!(e["files"], 6, "{e}");
    assert_eq!(e["fallbacks"]["hard links"], 2, "{e}");
    // The config beside the tree is read whole without a remark: no
    // kernel could list it.
    assert_eq!(e["fallbacks"].as_object().unwrap().len(), 1, "{e}");
    // Far less than the changed files (~46 MiB), within the issue's
    // bound of 4x the changed ranges plus 16 MiB.
    let read = r["bytes_read"].as_u64().unwrap();
    let changed = e["changed_bytes"].as_u64().unwrap();
    assert!(
        read <= 4 * changed + (16 << 20) && read < 40 << 20,
        "read {read} bytes for {changed} changed"
    );
    let base2 = base_name(&a).unwrap();
    assert_ne!(base1, base2);
    assert_eq!(
        s.vol.snapshot_names(),
        std::slice::from_ref(&base2),
        "the old base is gone"
    );

    // The same tree as a full read of the same state.
    let full = record(&b.backup_json(&["ct1"]));
    assert!(full.get("extents").is_none());
    // Every node, blob list included, the same; only the device number
    // of hard-linked files (restic records it) differs, each config
    // reading its own snapshot.
    let ta = tree_of(&a, r["snapshot"].as_str().unwrap());
    let tb = tree_of(&b, full["snapshot"].as_str().unwrap());
    assert_eq!(
        nodes(&a, &ta, ""),
        nodes(&b, &tb, ""),
        "extent path and full read stored different trees"
    );
    restores_identically(&a, &s, "after-extents");
    restic(&a, &repo_of(&a), &["check", "--read-data"]);
    let (code, out, err) = a.run(&["verify", "--read-data"]);
    assert_eq!(code, 0, "verify --read-data: {out}{err}");

    // The operator sees the base and what it holds alone.
    let (code, out, err) = a.run(&["list-containers", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["base"]["snapshot"], base2.as_str(), "{row}");
    assert!(row["base"]["exclusive_bytes"].is_u64(), "{row}");
    let (_, text, _) = a.run(&["list-containers"]);
    assert!(text.contains("BASE OF") && text.contains(&base2), "{text}");

    // Nothing changed: nothing read, the base moves on; the summary says
    // which path the changed files took.
    let (code, out, err) = a.run(&["backup", "ct1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("read around their changes"), "{out}");
    let r3 = record(&a.backup_json(&["ct1"]));
    // Only the config beside the tree ("hostname=ct1\n"), copied each run.
    assert_eq!(r3["bytes_read"], 13, "{r3}");
    assert!(r3["extents"]["fallbacks"].is_null(), "{r3}");
    assert_eq!(s.vol.snapshot_names().len(), 1);
}

#[test]
fn without_a_trustworthy_base_changed_files_are_read_whole() {
    let Some(s) = setup() else { return };
    let env = env_for(&s, true);
    env.backup_json(&["ct1"]);

    // 1. The base removed by hand.
    let base = base_name(&env).unwrap();
    sh(&format!(
        "btrfs -q subvolume delete {}",
        s.vol.snapshots().join(&base).display()
    ));
    edit(&s.private);
    let m = env.backup_json(&["ct1"]);
    let note = m["containers"][0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("not used"),
        "no note on the missing base: {m}"
    );
    assert!(record(&m).get("extents").is_none());
    restores_identically(&env, &s, "base-gone");
    assert_eq!(s.vol.snapshot_names(), [base_name(&env).unwrap()]);

    // 2. The parent forgotten: the newest backup left was not read from
    // the base.
    let newest = record(&m)["snapshot"].as_str().unwrap().to_owned();
    edit(&s.private);
    env.backup_json(&["ct1"]);
    let newest2 = {
        let (_, out, _) = env.run(&["list", "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(newest, newest2);
    restic(&env, &repo_of(&env), &["forget", &newest2]);
    edit(&s.private);
    let r = record(&env.backup_json(&["ct1"]));
    let why = r["extents"]["not_used"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("not from the base"), "{r}");
    assert_eq!(r["extents"]["files"], 0);
    restores_identically(&env, &s, "parent-forgotten");

    // 3. A base from another run: the record names a snapshot the parent
    // was not read from (its identity recorded right, so only the pairing
    // with the parent can tell).
    let other = format!("{}-other", base_name(&env).unwrap());
    sh(&format!(
        "btrfs -q subvolume snapshot -r {} {}",
        s.vol.volume().display(),
        s.vol.snapshots().join(&other).display()
    ));
    let show = sh(&format!(
        "btrfs subvolume show {}",
        s.vol.snapshots().join(&other).display()
    ));
    let field = |k: &str| {
        show.lines()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_owned()))
            .unwrap()
    };
    let bases = env.state().join("bases.json");
    let mut rec: Value = serde_json::from_str(&std::fs::read_to_string(&bases).unwrap()).unwrap();
    let b = rec["bases"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    b["snapshot"]["name"] = other.clone().into();
    b["snapshot"]["root"] = s.vol.snapshots().join(&other).display().to_string().into();
    b["id"]["uuid"] = field("UUID:").into();
    b["id"]["generation"] = field("Generation:").parse::<u64>().unwrap().into();
    std::fs::write(&bases, serde_json::to_vec(&rec).unwrap()).unwrap();
    edit(&s.private);
    let r = record(&env.backup_json(&["ct1"]));
    let why = r["extents"]["not_used"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("not from the base"), "{r}");
    restores_identically(&env, &s, "base-of-another-run");
    // It was the recorded base, so the run removed it in favour of its
    // own; the real old base, recorded nowhere now, goes at the next sweep.
    assert!(!s.vol.snapshots().join(&other).exists());

    // 4. Bases turned off: the next run removes the base it finds.
    env.edit(|c| {
        c.set("volume.0.keep_base", false);
    });
    env.backup_json(&["ct1"]);
    assert!(base_name(&env).is_none());
    let left = s.vol.leftovers(&[&env.state()]);
    assert!(
        left.is_empty() && s.vol.snapshot_names().is_empty(),
        "{left:?}"
    );
}

/// The blob list of `path` in `snapshot`.
fn content_of(env: &Env, snapshot: &str, path: &str) -> Vec<Value> {
    let tree = tree_of(env, snapshot);
    let (_, node) = nodes(env, &tree, "")
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap();
    node["content"].as_array().unwrap().clone()
}

#[test]
fn smaller_chunks_take_the_extent_path_and_a_changed_chunk_size_falls_back() {
    let Some(s) = setup() else { return };
    let env = env_for(&s, true);
    env.edit(|c| {
        c.set("target.chunk_size", "64K");
    });
    let first = record(&env.backup_json(&["ct1"]));
    // 24 MiB cut at most 512 KiB (8 × 64K) a chunk: restic's bounds
    // (at least 512 KiB) would give at most 49.
    let big = content_of(&env, first["snapshot"].as_str().unwrap(), "/big");
    assert!(big.len() > 49, "{} chunks of big", big.len());

    edit(&s.private);
    let r = record(&env.backup_json(&["ct1"]));
    let e = &r["extents"];
    assert!(e["not_used"].is_null(), "{e}");
    assert_eq!(e["files"], 6, "{e}");
    restores_identically(&env, &s, "small-chunks");
    restic(&env, &repo_of(&env), &["check", "--read-data"]);

    // Back to restic's bounds: the parent's blobs are not where this run
    // cuts, so it does not build on them (every file is read), and the
    // report says why.
    env.edit(|c| {
        c.set("target.chunk_size", "1M");
    });
    edit(&s.private);
    let r = record(&env.backup_json(&["ct1"]));
    let why = r["extents"]["not_used"].as_str().unwrap_or_default();
    assert!(why.contains("target.chunk_size changed"), "{r}");
    assert_eq!(r["extents"]["files"], 0, "{r}");
    assert_eq!(r["files_unchanged"], 0, "{r}");
    restores_identically(&env, &s, "chunk-size-changed");
    let big = content_of(&env, r["snapshot"].as_str().unwrap(), "/big");
    assert!(big.len() <= 49, "{} chunks of big", big.len());
    // And the run after that pairs again.
    edit(&s.private);
    let r = record(&env.backup_json(&["ct1"]));
    assert!(r["extents"]["not_used"].is_null(), "{r}");
    let (code, out, err) = env.run(&["verify", "--read-data"]);
    assert_eq!(code, 0, "verify --read-data: {out}{err}");
}

#[test]
fn a_kill_around_the_base_swap_leaves_one_base_or_none() {
    let Some(s) = setup() else { return };
    let env = env_for(&s, true);
    env.backup_json(&["ct1"]);
    for point in ["before-base-swap", "after-base-swap"] {
        let before = base_name(&env).unwrap();
        edit(&s.private);
        let child = env.spawn(&["backup", "ct1"], Some(point));
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{point}: the run was not killed");
        let (code, o, e) = env.run(&["recover"]);
        assert_eq!(code, 0, "{point}: recover: {o}{e}");
        let now = base_name(&env).unwrap();
        match point {
            "before-base-swap" => assert_eq!(now, before, "the old base stays"),
            _ => assert_ne!(now, before, "the new base is recorded"),
        }
        // Exactly the recorded base is left, and it is a snapshot.
        assert_eq!(
            s.vol.snapshot_names(),
            std::slice::from_ref(&now),
            "{point}"
        );
        assert!(s.vol.snapshots().join(&now).join("ct1/big").exists());
        // The next run is right, whichever base it found, and pairs with
        // it: before the swap, the killed run's backup was read from a
        // snapshot that is gone, so the one before it (read from the base
        // that stayed) is the parent, and the edit is read around.
        let r = record(&env.backup_json(&["ct1"]));
        assert!(r["extents"]["not_used"].is_null(), "{point}: {r}");
        let edited = r["extents"]["files"].as_u64() > Some(0);
        assert_eq!(edited, point == "before-base-swap", "{point}: {r}");
        restores_identically(&env, &s, point);
        assert_eq!(s.vol.snapshot_names().len(), 1, "{point}");
    }
}

#[test]
fn a_database_under_load_is_backed_up_five_times_reading_little() {
    if !privileged() || !require("python3", which("python3")) || !require("restic", which("restic"))
    {
        return;
    }
    let vol = LoopBtrfs::new("2G");
    let private = vol.volume().join("db");
    std::fs::create_dir_all(private.join("var/log")).unwrap();
    // 256 MiB of rows, then the real writer on it (one insert per
    // transaction, WAL mode) and a log appender, inside the container.
    sh(&format!(
        "python3 -c \"import os,sqlite3; c=sqlite3.connect('{db}'); c.execute('PRAGMA journal_mode=WAL'); \
         c.execute('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, at INTEGER, payload BLOB)'); \
         [c.executemany('INSERT INTO t (at, payload) VALUES (?, ?)', [(i, os.urandom(900)) for i in range(10000)]) for _ in range(28)]; \
         c.commit(); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()\" \
         && seq 1 3000000 > {log}",
        db = private.join("app.db").display(),
        log = private.join("var/log/app.log").display()
    ));
    let size = std::fs::metadata(private.join("app.db")).unwrap().len();
    assert!(size >= 256 << 20, "database of {size} bytes");
    let status = vol.dir.path().join("writer.status");
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&[
        "python3",
        workloads().join("sqlite_writer.py").to_str().unwrap(),
        private.join("app.db").to_str().unwrap(),
        status.to_str().unwrap(),
    ]);
    cg.spawn(&[
        "sh",
        workloads().join("log_appender.sh").to_str().unwrap(),
        private.join("var/log/app.log").to_str().unwrap(),
    ]);
    wait_for_lines(&status, 100);
    let env = local_repo_env(
        &vol.volume(),
        &[Ct {
            id: "db".into(),
            cgroup: cg.rel.clone(),
            private: private.clone(),
            config: None,
        }],
    );
    for run in 1..=5 {
        let m = env.backup_json(&["db"]);
        let r = record(&m);
        // What the run read is exactly its snapshot, now the base.
        let base = vol.snapshots().join(base_name(&env).unwrap()).join("db");
        let want = as_repository_restores(describe(&base));
        let to = env.dir.path().join(format!("restore-{run}"));
        let (code, out, err) = env.run(&["restore", "db", "--to", to.to_str().unwrap()]);
        assert_eq!(code, 0, "run {run}: {out}{err}");
        assert_same(
            &format!("run {run}"),
            &want,
            &as_repository_restores(describe(&to)),
        );
        let rto = env.dir.path().join(format!("restic-{run}"));
        restic(
            &env,
            &repo_of(&env),
            &["restore", "latest", "--target", rto.to_str().unwrap()],
        );
        sh(&format!(
            "cmp {b}/app.db {r}/app.db && cmp {b}/var/log/app.log {r}/var/log/app.log",
            b = base.display(),
            r = rto.display()
        ));
        sh(&format!("rm -rf {} {}", to.display(), rto.display()));
        if run > 1 {
            let e = &r["extents"];
            assert!(e["not_used"].is_null(), "run {run}: {e}");
            assert!(e["files"].as_u64().unwrap() >= 2, "run {run}: {e}");
            let read = r["bytes_read"].as_u64().unwrap();
            let changed = e["changed_bytes"].as_u64().unwrap();
            eprintln!("run {run}: read {read} bytes, {changed} in changed ranges; {e}");
            assert!(
                read <= 4 * changed + (16 << 20),
                "run {run}: read {read} bytes for {changed} changed"
            );
        }
        // More rows and lines before the next run.
        let n = std::fs::read_to_string(&status).unwrap().lines().count();
        wait_for_lines(&status, n + 200);
    }
    restic(&env, &repo_of(&env), &["check", "--read-data"]);
    let (code, out, err) = env.run(&["verify", "--read-data"]);
    assert_eq!(code, 0, "verify --read-data: {out}{err}");
}

#[test]
fn a_base_no_configured_volume_can_use_is_removed() {
    let Some(s) = setup() else { return };
    let env = env_for(&s, true);
    env.backup_json(&["ct1"]);
    let base = base_name(&env).unwrap();
    // The volume renamed in the config: its old base serves nothing.
    env.edit(|c| {
        c.set("volume.0.name", "renamed");
    });
    let (code, out, err) = env.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("removed base snapshot {base}")),
        "{err}"
    );
    assert!(base_name(&env).is_none());
    assert!(
        s.vol.snapshot_names().is_empty(),
        "{:?}",
        s.vol.snapshot_names()
    );
}
