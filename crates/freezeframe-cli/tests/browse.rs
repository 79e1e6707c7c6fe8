//! `ls`, `cat` and `restore --include` give the same answers on a tar and a
//! repository target holding the same tree, names with newlines and bytes
//! that are not UTF-8 included; a path through a symlink, with `..`, or
//! naming nothing is refused before anything is written.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::tree::{assert_same, describe};
use common::{local_repo_env, privileged, sh, Ct, Env};
use serde_json::Value;

fn build(p: &Path) {
    sh(&format!(
        r#"set -e; cd {}
mkdir -p dir/sub empty-dir
echo plain > plain.txt
head -c 1048576 /dev/urandom > dir/sub/deep.bin
echo file > dir/sub/file
ln -s sub dir/link
mkfifo dir/fifo
: > dir/empty
printf x > setuid && chmod 4755 setuid
echo owned > owned && chown 1234:5678 owned
touch -d '2001-02-03 04:05:06.123456789' owned
python3 -c 'open("sp ace\nnewline", "w").write("nl\n"); open(b"bad-\xff-name", "w").write("ff\n")'
mkdir links && echo shared > links/first && mkdir linked && ln links/first linked/second
"#,
        p.display()
    ));
}

fn run_os(env: &Env, args: &[&OsStr]) -> (i32, Vec<u8>, String) {
    let out = env.cmd().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `restore 101 --to TO --include P...`.
fn restore_include(env: &Env, to: &std::path::Path, includes: &[&str]) -> (i32, Vec<u8>, String) {
    let mut args = vec![os("restore"), os("101"), os("--to"), to.as_os_str()];
    for i in includes {
        args.extend([os("--include"), os(i)]);
    }
    run_os(env, &args)
}

/// `ls --json`, without what restic does not record (hardlinks).
fn ls(env: &Env, path: Option<&OsStr>) -> Vec<Value> {
    let mut args = vec![os("ls"), os("101"), os("--json")];
    args.extend(path);
    let (code, out, err) = run_os(env, &args);
    assert_eq!(code, 0, "ls: {err}");
    let v: Vec<Value> = serde_json::from_slice(&out).unwrap();
    v.into_iter()
        .filter(|e| !e["path"].as_str().unwrap().starts_with("link"))
        .collect()
}

#[test]
fn both_targets_answer_alike_and_refuse_the_same() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    build(&private);
    let conf = vol.dir.path().join("101.conf");
    std::fs::write(&conf, "hostname=ct101\n").unwrap();
    let ct = || Ct {
        id: "101".into(),
        cgroup: cg.rel.clone(),
        private: private.clone(),
        config: Some(conf.clone()),
    };
    let tar = Env::new(&vol.volume(), &[ct()], "");
    let repo = local_repo_env(&vol.volume(), &[ct()]);
    for env in [&tar, &repo] {
        env.backup_json(&["--all"]);
    }

    // ls: the same entries, the same order, on both.
    let all = ls(&tar, None);
    assert_eq!(all, ls(&repo, None), "ls of the whole tree");
    let paths: Vec<&str> = all.iter().map(|e| e["path"].as_str().unwrap()).collect();
    for p in [
        "sp ace\\nnewline",
        "bad-\\xff-name",
        "dir/sub/deep.bin",
        "dir/link",
        "dir/fifo",
    ] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    let owned = all.iter().find(|e| e["path"] == "owned").unwrap();
    assert_eq!(
        (owned["uid"].as_u64(), owned["gid"].as_u64()),
        (Some(1234), Some(5678))
    );
    assert_eq!(owned["mtime_ns"].as_i64(), Some(981_173_106_123_456_789));
    let link = all.iter().find(|e| e["path"] == "dir/link").unwrap();
    assert_eq!(link["link"], "sub");
    assert_eq!(ls(&tar, Some(os("dir"))), ls(&repo, Some(os("/dir/"))));
    let (code, text, _) = run_os(&tar, &[os("ls"), os("101"), os("dir")]);
    assert_eq!(code, 0);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("lrwxrwxrwx") && text.contains("dir/link -> sub"),
        "{text}"
    );

    // cat: the bytes, from both; names as the shell passes them.
    for env in [&tar, &repo] {
        let (code, out, err) = run_os(env, &[os("cat"), os("101"), os("dir/sub/deep.bin")]);
        assert_eq!(code, 0, "{err}");
        assert!(out == std::fs::read(private.join("dir/sub/deep.bin")).unwrap());
        let raw = OsStr::from_bytes(b"bad-\xff-name");
        let (code, out, err) = run_os(env, &[os("cat"), os("101"), raw]);
        assert_eq!((code, out), (0, b"ff\n".to_vec()), "{err}");
        let (code, out, _) = run_os(env, &[os("cat"), os("101"), os("sp ace\nnewline")]);
        assert_eq!((code, out), (0, b"nl\n".to_vec()));
        for (path, why) in [
            ("dir/link", "is a symlink to sub"),
            ("dir", "not a regular file"),
            ("nosuch", "no nosuch"),
            ("../etc/passwd", "`..` is not allowed"),
        ] {
            let (code, _, err) = run_os(env, &[os("cat"), os("101"), os(path)]);
            assert_eq!(code, 2, "cat {path}: {err}");
            assert!(err.contains(why), "cat {path}: {err}");
        }
    }
    // A hardlink's content, from the tar target (restic keeps no links).
    let (code, out, _) = run_os(&tar, &[os("cat"), os("101"), os("linked/second")]);
    assert_eq!((code, out), (0, b"shared\n".to_vec()));

    // restore --include: only those paths and the folders on their way.
    let want = vol.dir.path().join("want");
    std::fs::create_dir(&want).unwrap();
    sh(&format!(
        "cd {} && cp -a --parents dir/sub 'sp ace\nnewline' {}",
        private.display(),
        want.display()
    ));
    let mut got = Vec::new();
    for (name, env) in [("tar", &tar), ("repository", &repo)] {
        let to = vol.mnt.join(format!("include-{name}"));
        let (code, out, err) = restore_include(env, &to, &["dir/sub", "/sp ace\nnewline"]);
        assert_eq!(code, 0, "{name}: {}{err}", String::from_utf8_lossy(&out));
        assert!(
            !vol.mnt.join(format!("include-{name}.conf")).exists(),
            "no config with --include"
        );
        let mut d = describe(&to);
        // The folders on the way carry the backup's metadata; `cp` made
        // its own: compare what was asked for.
        d.retain(|k, _| k.starts_with(b"./dir/sub") || k.starts_with(b"./sp ace"));
        got.push((name, d));
    }
    let mut expect = describe(&want);
    expect.retain(|k, _| k.starts_with(b"./dir/sub") || k.starts_with(b"./sp ace"));
    for (name, d) in &got {
        assert_same(name, &expect, d);
    }
    for (name, env) in [("tar", &tar), ("repository", &repo)] {
        let to = vol.mnt.join(format!("only-{name}"));
        restore_include(env, &to, &["dir"]);
        let top: Vec<String> = std::fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(top, ["dir"], "{name}: nothing but what was asked for");
    }
    // A hardlink whose first name is not selected gets its content.
    let to = vol.mnt.join("hardlink");
    let (code, _, err) = restore_include(&tar, &to, &["linked"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(to.join("linked/second")).unwrap(),
        b"shared\n"
    );
    assert!(!to.join("links").exists());

    // Refused before anything is written.
    for env in [&tar, &repo] {
        for (path, why) in [
            ("dir/link/file", "on its way is not a folder"),
            ("../escape", "`..` is not allowed"),
            ("nosuch/file", "no"),
        ] {
            let to = vol.mnt.join("refused");
            let (code, _, err) = restore_include(env, &to, &[path]);
            assert_eq!(code, 2, "--include {path}: {err}");
            assert!(err.contains(why), "--include {path}: {err}");
            assert!(!to.exists(), "--include {path}: something was written");
        }
    }
    drop(cg);
}
