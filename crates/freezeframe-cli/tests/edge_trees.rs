//! Legal trees that are easy to get wrong, in both kinds of target: times
//! before 1970 (with fractions), after 2038 and with nanoseconds; paths
//! longer than PATH_MAX; file systems mounted inside a private area. Each
//! tree goes through a tar target (restored by freezeframe and by GNU tar)
//! and a repository target (restored by freezeframe), and comes back
//! exactly, as an independent describer (Python's descriptor-based
//! `os.fwalk`) sees it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{local_repo_env, privileged, require, sh, which, Ct, Env};
use serde_json::Value;

/// Describes a tree of any depth: relative path → type, mode, owner, mtime
/// in ns, size, content hash, link target. The root itself is left out
/// (restores give it the destination's own folder).
const DESCRIBE: &str = r#"
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
    rel = os.path.relpath(dirpath, root)
    for name in dirnames + filenames:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        key = os.path.normpath(os.path.join(rel, name))
        e = {"mode": stat.S_IMODE(st.st_mode), "type": stat.S_IFMT(st.st_mode),
             "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
        if stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirfd)
            with os.fdopen(fd, "rb") as f:
                e["sha256"] = hashlib.sha256(f.read()).hexdigest()
            e["size"] = st.st_size
        if stat.S_ISLNK(st.st_mode):
            e["link"] = os.readlink(name, dir_fd=dirfd)
        out[key] = e
print(json.dumps(out, sort_keys=True))
"#;

fn describe(root: &Path) -> Value {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(DESCRIBE)
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "describe {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_same(what: &str, want: &Value, got: &Value) {
    let (w, g) = (want.as_object().unwrap(), got.as_object().unwrap());
    let missing: Vec<&String> = w.keys().filter(|k| !g.contains_key(*k)).collect();
    let extra: Vec<&String> = g.keys().filter(|k| !w.contains_key(*k)).collect();
    let differ: Vec<String> = w
        .iter()
        .filter(|(k, v)| g.get(*k).is_some_and(|x| x != *v))
        .map(|(k, v)| format!("{k}: want {v}, got {}", g[k]))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{what}: missing {missing:?}\nextra {extra:?}\ndiffer {differ:#?}"
    );
}

/// Files, a folder and a symlink with times at the edges.
fn build_times(p: &Path) {
    sh(&format!(
        r#"set -e; cd {}; mkdir -p times/old-dir
for f in pre1970-frac pre1901 just-before-1970 past2038 far-future nanos; do echo $f > times/$f; done
ln -s pre1970-frac times/old-link
touch -d '1969-12-31 23:59:58.5' times/pre1970-frac
touch -d '1901-12-13 20:45:51.25' times/pre1901
touch -d '1969-12-31 23:59:59.999999999' times/just-before-1970
touch -d '2038-01-19 03:14:08.000000001' times/past2038
touch -d '2400-02-29 12:00:00.5' times/far-future
touch -d '2001-02-03 04:05:06.123456789' times/nanos
touch -h -d '1960-06-01 00:00:00.75' times/old-link
touch -d '1950-01-01 00:00:00.1' times/old-dir"#,
        p.display()
    ));
}

/// 110 folders of 40 characters: a 4.5 KiB path, past PATH_MAX, with a
/// file at the bottom and one beside the top.
fn build_deep(p: &Path) {
    sh(&format!(
        r#"python3 - {} <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
seg = "d" * 40
os.mkdir("deep", dir_fd=fd); fd = os.open("deep", os.O_RDONLY, dir_fd=fd)
for i in range(110):
    os.mkdir(seg, dir_fd=fd)
    fd = os.open(seg, os.O_RDONLY, dir_fd=fd)
leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
os.write(leaf, b"at the bottom\n"); os.close(leaf)
os.symlink("leaf", "leaf-link", dir_fd=fd)
PY
echo beside > {}/deep-sibling"#,
        p.display(),
        p.display()
    ));
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn times_deep_paths_and_inner_mounts_round_trip_in_both_targets() {
    if !privileged() || !require("python3", which("python3")) || !require("zstd", which("zstd")) {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    build_times(&private);
    build_deep(&private);
    // A tmpfs mounted over a folder that has a file of its own beneath.
    let cache = private.join("var/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("under-the-mount"), "on the volume").unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=4m ff-test-inner {}",
        cache.display()
    ));
    let mounted = Unmount(cache.clone());
    std::fs::write(cache.join("in-the-tmpfs"), "not on the volume").unwrap();
    // A mount point named to retitle the operator's terminal and forge a
    // line of the summary: its name is shown escaped, never as it is.
    let hostile = private.join("var/\x1b]0;owned\x07\nx");
    std::fs::create_dir_all(&hostile).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "ff-test-hostile"])
        .arg(&hostile)
        .status()
        .unwrap();
    assert!(mount.success());
    let hostile_mounted = Unmount(hostile.clone());
    let ct = || Ct {
        id: "101".into(),
        cgroup: cg.rel.clone(),
        private: private.clone(),
        config: None,
    };
    let tar_env = Env::new(&vol.volume(), &[ct()], "");
    let repo_env = local_repo_env(&vol.volume(), &[ct()]);

    let mut runs = Vec::new();
    for env in [&tar_env, &repo_env] {
        let (code, out, err) = env.run(&["backup", "--all"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("101: warning: var/cache is a mount point (tmpfs from ff-test-inner)"),
            "the summary warns of the mount: {out}"
        );
        assert!(
            out.contains(
                "101: warning: var/\\x1b]0;owned\\x07\\nx is a mount point (tmpfs from ff-test-hostile)"
            ),
            "the hostile name is shown escaped: {out:?}"
        );
        assert!(
            !out.contains(['\x1b', '\x07']) && !err.contains(['\x1b', '\x07']),
            "a control character of the tree reached the terminal: {out:?} {err:?}"
        );
        let (_, list, _) = env.run(&["list", "--json"]);
        runs.push(list);
        // The manifest records it.
        let run_dir = std::fs::read_dir(&env.target)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("manifest.json").exists())
            .unwrap();
        let m: Value =
            serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
        let c = &m["containers"][0];
        assert_eq!(c["result"], "ok", "{c}");
        assert_eq!(
            c["mounts"],
            serde_json::json!([
                {"path": "var/\\x1b]0;owned\\x07\\nx", "fs_type": "tmpfs", "source": "ff-test-hostile"},
                {"path": "var/cache", "fs_type": "tmpfs", "source": "ff-test-inner"},
            ]),
            "{c}"
        );
    }
    // What the backups hold: the tree as it is on the volume.
    drop(hostile_mounted);
    drop(mounted);
    let want = describe(&private);
    assert!(
        want["deep-sibling"].is_object()
            && want
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.len() > 4500 && k.ends_with("/leaf")),
        "the source tree is deep: {}",
        want.as_object().unwrap().len()
    );
    assert!(want["var/cache/under-the-mount"].is_object());

    for (name, env) in [("tar", &tar_env), ("repository", &repo_env)] {
        // On the btrfs volume's file system: it holds every time tested.
        let to = vol.mnt.join(format!("restored-{name}"));
        let (code, out, err) = env.run(&["restore", "101", "--to", to.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert_same(
            &format!("freezeframe restore from the {name} target"),
            &want,
            &describe(&to),
        );
    }
    // GNU tar reads the archive the same way, but for the deep branch: GNU
    // tar 1.34 writes paths past PATH_MAX but refuses to extract them (from
    // its own archives too: `Cannot open: File name too long`).
    let archive = sh(&format!(
        "find {} -name '101.tar.zst'",
        tar_env.target.display()
    ));
    let gnu = vol.mnt.join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    sh(&format!(
        "tar --zstd -xpf {} --numeric-owner --exclude=./deep -C {}",
        archive.trim(),
        gnu.display()
    ));
    let mut shallow = want.clone();
    shallow
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k != "deep" && !k.starts_with("deep/"));
    assert_same("GNU tar", &shallow, &describe(&gnu));
    // Nothing left but the base the repository config keeps.
    let left = vol.leftovers(&[&tar_env.state(), &repo_env.state()]);
    assert!(left.is_empty(), "{left:?}");
    drop(cg);
}
