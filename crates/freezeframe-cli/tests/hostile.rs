//! Hostile archives: `restore` refuses entries that would write outside the
//! target (`..`, absolute paths, writes through symlinks, hardlinks out) and
//! writes nothing outside it.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use common::{require, Env};
use freezeframe::{
    Compression, ContainerRecord, Encoder, FileKind, FileRecord, Manifest, Mode, Outcome,
    RuntimeKind, Strategy, Timings, MANIFEST_VERSION,
};
use tar::{EntryType, Header};

fn entry(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: EntryType, link: &str, data: &[u8]) {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// Writes a run holding `archive` as container `ct`'s backup, with a valid manifest.
fn plant_run(target: &Path, run: &str, tar_bytes: Vec<u8>) {
    let dir = target.join(run);
    std::fs::create_dir_all(&dir).unwrap();
    let mut enc = Encoder::new(Vec::new(), Compression::Zstd, 3, 1).unwrap();
    enc.write_all(&tar_bytes).unwrap();
    let data = enc.finish().unwrap();
    std::fs::write(dir.join("ct.tar.zst"), &data).unwrap();
    let m = Manifest {
        version: MANIFEST_VERSION,
        tool: "test".into(),
        run: run.into(),
        host: "h".into(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        mode: Mode::Snapshot,
        strategy: Strategy::Group,
        compression: Compression::Zstd,
        level: 3,
        containers: vec![ContainerRecord {
            id: "ct".into(),
            runtime: RuntimeKind::Cgroup,
            volume: "vol".into(),
            mode: Some(Mode::Snapshot),
            note: None,
            result: Outcome::Ok,
            error: None,
            freeze_ms: Some(1.0),
            window: None,
            timings: Timings::default(),
            bytes_in: 0,
            bytes_out: data.len() as u64,
            files: vec![FileRecord {
                name: "ct.tar.zst".into(),
                kind: FileKind::Archive,
                size: data.len() as u64,
                blake3: blake3::hash(&data).to_hex().to_string(),
            }],
            tree: Default::default(),
            repository: None,
            mounts: vec![],
        }],
        snapshots: vec![],
        warnings: vec![],
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
}

fn listing(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(p);
    v.sort();
    v
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn hostile_archives_are_refused_and_nothing_escapes() {
    if !require("root", common::sh("id -u").trim() == "0") {
        return;
    }
    let outer = tempfile::Builder::new()
        .prefix("ff-hostile-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let outer_s = outer.path().to_str().unwrap().to_owned();
    let abs_victim = format!("/var/tmp/ff-hostile-abs-{}", std::process::id());
    type Case = (
        &'static str,
        Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "dotdot",
            Box::new(|b| entry(b, "./../../escape", EntryType::Regular, "", b"x")),
            "`..` in path",
        ),
        (
            "absolute",
            Box::new({
                let p = abs_victim.clone();
                move |b| entry(b, &p, EntryType::Regular, "", b"x")
            }),
            "absolute path",
        ),
        (
            "symlink-abs",
            Box::new({
                let o = outer_s.clone();
                move |b| {
                    entry(b, "./link", EntryType::Symlink, &o, b"");
                    entry(b, "./link/escape", EntryType::Regular, "", b"x");
                }
            }),
            "symlink",
        ),
        (
            "symlink-rel",
            Box::new(|b| {
                entry(b, "./up", EntryType::Symlink, "..", b"");
                entry(b, "./up/escape", EntryType::Regular, "", b"x");
            }),
            "symlink",
        ),
        (
            "hardlink-out",
            Box::new(|b| entry(b, "./hl", EntryType::Link, "../escape", b"")),
            "`..` in path",
        ),
        (
            // A name that would retitle the operator's terminal and forge
            // a line of the report, were it printed as it is.
            "terminal-escape",
            Box::new(|b| {
                entry(
                    b,
                    "./../\x1b]0;owned\x07\nfreezeframe: restore ok",
                    EntryType::Regular,
                    "",
                    b"x",
                )
            }),
            "`..` in path",
        ),
    ];
    let env = Env::new(Path::new("/nonexistent-volume"), &[], "");
    for (i, (name, build, expect)) in cases.iter().enumerate() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "./", EntryType::Directory, "", b"");
        entry(&mut b, "./ok", EntryType::Regular, "", b"fine");
        build(&mut b);
        let run = format!("2026-01-01T00000{i}Z-h");
        plant_run(&env.target, &run, b.into_inner().unwrap());
        let to = outer.path().join(format!("target-{name}"));
        let before = listing(outer.path());
        let (code, out, err) =
            env.run(&["restore", "ct", "--run", &run, "--to", to.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(
            err.contains("refusing archive entry") && err.contains(expect),
            "{name}: {err}"
        );
        assert!(
            !err.contains(['\x1b', '\x07']) && !out.contains(['\x1b', '\x07']),
            "{name}: a control character of the archive reached the terminal: {err:?}"
        );
        if *name == "terminal-escape" {
            assert!(
                err.contains("\\x1b]0;owned\\x07\\nfreezeframe: restore ok"),
                "{name}: the name is not shown escaped: {err:?}"
            );
        }
        let after: Vec<String> = listing(outer.path())
            .into_iter()
            .filter(|p| !p.starts_with(to.to_str().unwrap()))
            .collect();
        let before: Vec<String> = before
            .into_iter()
            .filter(|p| !p.starts_with(to.to_str().unwrap()))
            .collect();
        assert_eq!(
            before, after,
            "{name}: something was written outside the target"
        );
        assert!(
            !Path::new(&abs_victim).exists(),
            "{name}: absolute path was written"
        );
        assert!(!Path::new("/var/tmp/escape").exists());
    }
}

#[test]
fn restore_refuses_non_empty_target_and_corrupt_archives() {
    if !require("root", common::sh("id -u").trim() == "0") {
        return;
    }
    let env = Env::new(Path::new("/nonexistent-volume"), &[], "");
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "./", EntryType::Directory, "", b"");
    entry(&mut b, "./f", EntryType::Regular, "", b"data");
    let run = "2026-01-01T000000Z-h";
    plant_run(&env.target, run, b.into_inner().unwrap());
    let to = env.dir.path().join("restore");
    std::fs::create_dir(&to).unwrap();
    std::fs::write(to.join("precious"), "keep").unwrap();
    let (code, _, err) = env.run(&["restore", "ct", "--to", to.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(to.join("precious")).unwrap(),
        "keep"
    );
    let (code, _, err) = env.run(&["restore", "ct", "--to", to.to_str().unwrap(), "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(to.join("f")).unwrap(), "data");

    // Flip one byte: checksum mismatch, nothing restored, verify says BAD.
    let archive = env.target.join(run).join("ct.tar.zst");
    let mut bytes = std::fs::read(&archive).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let fresh = env.dir.path().join("fresh");
    let (code, _, err) = env.run(&["restore", "ct", "--to", fresh.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!fresh.exists(), "nothing restored, not even the folder");
    let (code, out, _) = env.run(&["verify"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("BAD") && out.contains("BLAKE3 mismatch"),
        "{out}"
    );
}

fn edit_manifest(target: &Path, run: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let p = target.join(run).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn hostile_manifests_and_run_folders_are_refused_promptly() {
    if !require("root", common::sh("id -u").trim() == "0") {
        return;
    }
    let env = Env::new(Path::new("/nonexistent-volume"), &[], "");
    let tar = || {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "./", EntryType::Directory, "", b"");
        entry(&mut b, "./f", EntryType::Regular, "", b"data");
        b.into_inner().unwrap()
    };
    let second = std::time::Duration::from_secs(5);
    // A file name that leaves the run folder, with a matching checksum.
    let outside = std::fs::read("/etc/hostname").unwrap();
    let r1 = "2026-01-01T000001Z-h";
    plant_run(&env.target, r1, tar());
    edit_manifest(&env.target, r1, |m| {
        let f = &mut m["containers"][0]["files"][0];
        f["name"] = "../../../../../../../etc/hostname".into();
        f["size"] = outside.len().into();
        f["blake3"] = blake3::hash(&outside).to_hex().to_string().into();
    });
    // An id that is a path, and an id listed twice.
    let r2 = "2026-01-01T000002Z-h";
    plant_run(&env.target, r2, tar());
    edit_manifest(&env.target, r2, |m| {
        m["containers"][0]["id"] = "../../evil".into()
    });
    let r3 = "2026-01-01T000003Z-h";
    plant_run(&env.target, r3, tar());
    edit_manifest(&env.target, r3, |m| {
        let c = m["containers"][0].clone();
        m["containers"].as_array_mut().unwrap().push(c);
    });
    // A FIFO and a symlink to /dev/zero in place of the manifest.
    let r4 = "2026-01-01T000004Z-h";
    plant_run(&env.target, r4, tar());
    let m4 = env.target.join(r4).join("manifest.json");
    std::fs::remove_file(&m4).unwrap();
    common::sh(&format!("mkfifo {}", m4.display()));
    let r5 = "2026-01-01T000005Z-h";
    plant_run(&env.target, r5, tar());
    let m5 = env.target.join(r5).join("manifest.json");
    std::fs::remove_file(&m5).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &m5).unwrap();
    // A good manifest whose archive is a symlink to /dev/zero.
    let r6 = "2026-01-01T000006Z-h";
    plant_run(&env.target, r6, tar());
    let a6 = env.target.join(r6).join("ct.tar.zst");
    std::fs::remove_file(&a6).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &a6).unwrap();

    let (code, out, err) = env.run_within(&["list", "--json"], second);
    assert_eq!(code, 0, "{out}{err}");
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let problem = |run: &str| -> String {
        let r = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run"] == run)
            .unwrap();
        assert_eq!(r["complete"], false, "{run}: {r}");
        r["problem"].as_str().unwrap().to_owned()
    };
    assert!(
        problem(r1).contains("not a file a run writes"),
        "{}",
        problem(r1)
    );
    assert!(
        problem(r2).contains("not a valid container id"),
        "{}",
        problem(r2)
    );
    assert!(problem(r3).contains("listed twice"), "{}", problem(r3));
    assert!(problem(r4).contains("FIFO"), "{}", problem(r4));
    assert!(problem(r5).contains("symlink"), "{}", problem(r5));

    let (code, out, _) = env.run_within(&["verify"], second);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("symlink, not a regular file"),
        "the archive of {r6}: {out}"
    );

    let to = env.dir.path().join("restored");
    for run in [r1, r2, r3, r4, r5, r6] {
        let (code, out, err) = env.run_within(
            &["restore", "ct", "--run", run, "--to", to.to_str().unwrap()],
            second,
        );
        assert_eq!(code, 1, "{run}: {out}{err}");
        assert!(!to.exists(), "{run}: nothing restored");
    }
}

#[test]
fn sigterm_stops_a_restore_within_a_second() {
    if !require("root", common::sh("id -u").trim() == "0") {
        return;
    }
    let env = Env::new(Path::new("/nonexistent-volume"), &[], "");
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "./", EntryType::Directory, "", b"");
    for i in 0..3 {
        entry(&mut b, &format!("./f{i}"), EntryType::Regular, "", b"data");
    }
    let run = "2026-01-01T000000Z-h";
    plant_run(&env.target, run, b.into_inner().unwrap());
    let to = env.dir.path().join("restored");
    let mut child = env.spawn(
        &["restore", "ct", "--to", to.to_str().unwrap()],
        Some("mid-restore:hang=60s"),
    );
    let t = std::time::Instant::now();
    while !to.join("f0").exists() {
        assert!(t.elapsed().as_secs() < 20, "the restore never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    common::sh(&format!("kill -TERM {}", child.id()));
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < std::time::Duration::from_millis(1500),
            "still running 1.5 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
