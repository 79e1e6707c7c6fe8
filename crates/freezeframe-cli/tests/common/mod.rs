//! Fixtures for the privileged integration tests: loop-backed btrfs volumes,
//! cgroups with real processes, and a config to drive the real binary.
//! Every fixture removes exactly what it created, also when a test fails.
//! A missing facility skips the test locally and fails it when `CI=true`.

#![allow(dead_code)]

pub mod bin;
pub mod config;
pub mod restic;
pub mod s3;
pub mod tree;

pub use bin::freezeframe;
pub use config::TestConfig;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Whether a required facility is present; when it is not, `CI=true` fails
/// the test, otherwise it is skipped with a note.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("required test facility missing in CI: {what}");
    }
    eprintln!("skipped: {what} not available (set CI=true to make this a failure)");
    false
}

/// Root, btrfs tools, loop devices and cgroup v2: what most tests need.
pub fn privileged() -> bool {
    require("root", rustix_is_root())
        && require("mkfs.btrfs (btrfs-progs)", which("mkfs.btrfs"))
        && require("losetup", which("losetup"))
        && require("cgroup v2", cgroup_v2_root().is_some())
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// Makes `p` another owner's, mode 000: root without the capabilities
/// that bypass permissions ([`bin::UNPRIVILEGED_ROOT`]) cannot read it.
pub fn unreadable(p: &Path) {
    sh(&format!(
        "chown 12345:12345 {0} && chmod 000 {0}",
        p.display()
    ));
}

/// Whether a program is on PATH.
/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn which(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mounts() -> Vec<(String, String, String)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = left.split(' ').nth(4)?.to_owned();
            let mut r = right.split(' ');
            let fs = r.next()?.to_owned();
            let _src = r.next();
            Some((mp, fs, r.next().unwrap_or("").to_owned()))
        })
        .collect()
}

/// The cgroup v2 mount point.
pub fn cgroup_v2_root() -> Option<PathBuf> {
    mounts()
        .into_iter()
        .find(|m| m.1 == "cgroup2")
        .map(|m| PathBuf::from(m.0))
}

/// The cgroup v1 freezer mount point.
pub fn cgroup_v1_freezer_root() -> Option<PathBuf> {
    mounts()
        .into_iter()
        .find(|m| m.1 == "cgroup" && m.2.split(',').any(|o| o == "freezer"))
        .map(|m| PathBuf::from(m.0))
}

/// This crate's folder. Read at run time (cargo sets it for `cargo test`):
/// a test binary reused from another checkout sharing the target dir must
/// not point into that checkout. Inside the LVM guest, where cargo does not
/// run the tests, the build-time value is used.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The repository's `scripts/workloads` folder.
pub fn workloads() -> PathBuf {
    manifest_dir().join("../../scripts/workloads")
}

/// Waits until the file `p` (a workload's status file) has `n` lines.
pub fn wait_for_lines(p: &Path, n: usize) {
    for _ in 0..3000 {
        if std::fs::read_to_string(p)
            .map(|s| s.lines().count() >= n)
            .unwrap_or(false)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never reached {n} lines", p.display());
}

/// A loop-backed btrfs file system with a subvolume `ct` (the volume) and a
/// snapshot folder beside it.
pub struct LoopBtrfs {
    pub dir: tempfile::TempDir,
    pub mnt: PathBuf,
    pub loopdev: String,
}

impl LoopBtrfs {
    /// Creates and mounts a volume of `size` (e.g. "1G").
    pub fn new(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ff-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let img = dir.path().join("vol.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        sh(&format!("truncate -s {size} {}", img.display()));
        let loopdev = sh(&format!("losetup -f --show {}", img.display()))
            .trim()
            .to_owned();
        let me = Self { dir, mnt, loopdev };
        sh(&format!("mkfs.btrfs -q {} >/dev/null", me.loopdev));
        sh(&format!("mount {} {}", me.loopdev, me.mnt.display()));
        sh(&format!(
            "btrfs -q subvolume create {}",
            me.volume().display()
        ));
        std::fs::create_dir(me.snapshots()).unwrap();
        me
    }

    /// The volume (a subvolume).
    pub fn volume(&self) -> PathBuf {
        self.mnt.join("ct")
    }

    /// Where freezeframe puts snapshots (the default `snapshot_dir`).
    pub fn snapshots(&self) -> PathBuf {
        self.mnt.join(".freezeframe-snapshots")
    }

    /// Snapshots (folders) in the snapshot folder.
    pub fn snapshot_names(&self) -> Vec<String> {
        self.snapshot_entries(true)
    }

    /// Everything in the snapshot folder: snapshots and the owner records
    /// beside them.
    pub fn snapshot_folder(&self) -> Vec<String> {
        self.snapshot_entries(false)
    }

    /// Everything in the snapshot folder but the base snapshots the state
    /// dirs `states` keep (and their owner records): what a run leaked.
    pub fn leftovers(&self, states: &[&Path]) -> Vec<String> {
        let mut keep = Vec::new();
        for s in states {
            let Ok(text) = std::fs::read_to_string(s.join("bases.json")) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for b in v["bases"].as_object().into_iter().flat_map(|m| m.values()) {
                let name = b["snapshot"]["name"].as_str().unwrap().to_owned();
                keep.push(format!("{name}.owner"));
                keep.push(name);
            }
        }
        let mut left = self.snapshot_folder();
        left.retain(|n| !keep.contains(n));
        left
    }

    fn snapshot_entries(&self, dirs_only: bool) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.snapshots())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| !dirs_only || e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        for n in self.snapshot_names() {
            let _ = Command::new("btrfs")
                .args(["-q", "subvolume", "delete"])
                .arg(self.snapshots().join(n))
                .status();
        }
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(&self.loopdev)
            .status();
    }
}

/// Which cgroup interface a test cgroup uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CgVersion {
    V1,
    V2,
}

/// A cgroup of our own holding processes we started. Dropping it thaws it,
/// kills its processes (by their PIDs) and removes it.
pub struct TestCgroup {
    pub version: CgVersion,
    /// Path relative to the cgroup root (what the config's `cgroup` says).
    pub rel: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl TestCgroup {
    /// A new, empty cgroup.
    pub fn new(version: CgVersion) -> Self {
        let root = match version {
            CgVersion::V2 => cgroup_v2_root().expect("cgroup v2"),
            CgVersion::V1 => cgroup_v1_freezer_root().expect("cgroup v1 freezer"),
        };
        let rel = unique("ff-test");
        let dir = root.join(&rel);
        std::fs::create_dir(&dir).unwrap();
        Self {
            version,
            rel,
            dir,
            children: Vec::new(),
        }
    }

    /// Starts `argv` inside the cgroup (it joins before it execs).
    pub fn spawn(&mut self, argv: &[&str]) -> u32 {
        let procs = self.dir.join("cgroup.procs");
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec "$@""#)
            .arg(&procs)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        // Wait until it has joined.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .any(|l| l == pid.to_string())
        {
            assert!(
                Instant::now() < deadline,
                "process {pid} did not join {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        pid
    }

    /// Whether the kernel says this cgroup is frozen (or freezing).
    pub fn is_frozen(&self) -> bool {
        match self.version {
            CgVersion::V2 => {
                let ev =
                    std::fs::read_to_string(self.dir.join("cgroup.events")).unwrap_or_default();
                ev.lines().any(|l| l == "frozen 1")
                    || std::fs::read_to_string(self.dir.join("cgroup.freeze"))
                        .unwrap_or_default()
                        .trim()
                        == "1"
            }
            CgVersion::V1 => {
                std::fs::read_to_string(self.dir.join("freezer.state"))
                    .unwrap_or_default()
                    .trim()
                    != "THAWED"
            }
        }
    }

    fn thaw(&self) {
        let _ = match self.version {
            CgVersion::V2 => std::fs::write(self.dir.join("cgroup.freeze"), "0"),
            CgVersion::V1 => std::fs::write(self.dir.join("freezer.state"), "THAWED"),
        };
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.thaw();
        if self.version == CgVersion::V2 {
            // Ends every process of our own cgroup, grandchildren included.
            let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "warning: could not remove test cgroup {}",
            self.dir.display()
        );
    }
}

/// A 1 GiB loop-backed btrfs volume holding the empty private area of
/// container `id`, and a cgroup with one sleeping process for it. Bind the
/// three in this order (`let (vol, cg, private) = …`): locals drop in
/// reverse, so the process goes before the volume.
pub fn volume_with_container(id: &str) -> (LoopBtrfs, TestCgroup, PathBuf) {
    let vol = LoopBtrfs::new("1G");
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "1000"]);
    let private = vol.volume().join(id);
    std::fs::create_dir(&private).unwrap();
    (vol, cg, private)
}

/// One container of a test config.
pub struct Ct {
    pub id: String,
    pub cgroup: String,
    pub private: PathBuf,
    pub config: Option<PathBuf>,
}

impl Ct {
    /// Container `id` in the cgroup `cg`, its files at `private`, no
    /// config file.
    pub fn new(id: &str, cg: &TestCgroup, private: &Path) -> Ct {
        Ct {
            id: id.into(),
            cgroup: cg.rel.clone(),
            private: private.to_owned(),
            config: None,
        }
    }
}

/// Writes a config and runs the real binary against it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub target: PathBuf,
    pub config: PathBuf,
    /// Environment variables every run of the binary gets (say, the S3
    /// keys a real host exports), on top of the cleaned environment.
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// A config with one btrfs volume and these containers; `extra` is a
    /// TOML fragment merged in ([`TestConfig::merge`]).
    pub fn new(volume: &Path, cts: &[Ct], extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ff-env-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let target = dir.path().join("backups");
        let mut c = TestConfig::new(&dir.path().join("state"), &target, volume);
        for ct in cts {
            let mut t = toml::Table::new();
            t.insert("id".into(), ct.id.clone().into());
            t.insert("cgroup".into(), ct.cgroup.clone().into());
            t.insert("private".into(), config::path(&ct.private).into());
            if let Some(cfg) = &ct.config {
                t.insert("config".into(), config::path(cfg).into());
            }
            c.push("container", t);
        }
        c.merge(extra);
        let config = dir.path().join("freezeframe.toml");
        c.save(&config);
        Self {
            dir,
            target,
            config,
            vars: Vec::new(),
        }
    }

    /// Changes the config file through the typed builder.
    pub fn edit(&self, f: impl FnOnce(&mut TestConfig)) {
        let mut c = TestConfig::load(&self.config);
        f(&mut c);
        c.save(&self.config);
    }

    /// The binary, with this config (see [`bin`]).
    pub fn command(&self) -> Command {
        let mut c = freezeframe(Some(&self.config));
        c.envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// The binary, with this config, for `assert_cmd`'s assertions.
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command())
    }

    /// Starts the binary with piped stdout and stderr, armed with `fault`
    /// (`FREEZEFRAME_FAULT`) if given.
    pub fn spawn(&self, args: &[&str], fault: Option<&str>) -> Child {
        let mut c = self.command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(f) = fault {
            c.env("FREEZEFRAME_FAULT", f);
        }
        c.spawn().unwrap()
    }

    /// Runs the binary, failing the test if it has not ended within
    /// `limit` (it is then killed by PID).
    pub fn run_within(&self, args: &[&str], limit: Duration) -> (i32, String, String) {
        let mut child = self.spawn(args, None);
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t.elapsed() > limit {
                kill9(child.id());
                let _ = child.wait();
                panic!("{args:?} did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the binary; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `backup --json ARGS` and returns the manifest.
    pub fn backup_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(&a);
        assert_eq!(code, 0, "backup failed ({code}): {out}\n{err}");
        assert!(
            !err.contains("cleaning up"),
            "a good run has nothing to clean up: {err}"
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }

    /// Runs `backup ARGS` as [`bin::UNPRIVILEGED_ROOT`], which cannot read
    /// the files [`unreadable`] made: a partial backup (exit 3).
    pub fn backup_partial(&self, args: &[&str]) {
        let out = bin::unprivileged(Some(&self.config))
            .arg("backup")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The state dir (journal, lock).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Entries of the target folder (runs, temp files, anything).
    pub fn target_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.target)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The password of every test repository.
pub const REPO_PASSWORD: &str = "correct horse battery staple";

/// An `Env` whose target is a repository; `location` is the
/// `target.repository` value, `extra_target` more `[target]` keys/tables.
pub fn repo_env(volume: &Path, cts: &[Ct], location: &str, extra_target: &str) -> Env {
    repo_env_with(volume, cts, location, extra_target, &[])
}

/// [`repo_env`] whose runs get `vars` ([`Env::vars`]).
pub fn repo_env_with(
    volume: &Path,
    cts: &[Ct],
    location: &str,
    extra_target: &str,
    vars: &[(&str, &str)],
) -> Env {
    let mut env = Env::new(volume, cts, "");
    env.vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    std::fs::write(pw_file(&env), format!("{REPO_PASSWORD}\n")).unwrap();
    env.edit(|c| {
        c.repository(location, &pw_file(&env))
            .merge(&format!("[target]\n{extra_target}"));
    });
    env
}

/// The password file of a repository `Env`.
pub fn pw_file(env: &Env) -> PathBuf {
    env.dir.path().join("repo.pass")
}

/// An `Env` backing up into a new local repository beside it.
pub fn local_repo_env(volume: &Path, cts: &[Ct]) -> Env {
    let env = local_repo_env_uninit(volume, cts);
    let (code, out, err) = env.run(&["init"]);
    assert_eq!(code, 0, "init: {out}{err}");
    env
}

/// [`volume_with_container`] with a local repository created for the one
/// container (bind as `let (vol, cg, private, env) = …`).
pub fn repo_with_container(id: &str) -> (LoopBtrfs, TestCgroup, PathBuf, Env) {
    let (vol, cg, private) = volume_with_container(id);
    let env = local_repo_env(
        &vol.volume(),
        &[Ct {
            id: id.into(),
            cgroup: cg.rel.clone(),
            private: private.clone(),
            config: None,
        }],
    );
    (vol, cg, private, env)
}

/// [`local_repo_env`] with the repository not created yet.
pub fn local_repo_env_uninit(volume: &Path, cts: &[Ct]) -> Env {
    let env = repo_env(volume, cts, "/REPO", "");
    // The repository goes beside the config, known only once it exists.
    let repo = env.dir.path().join("repo");
    env.edit(|c| {
        c.set("target.repository", config::path(&repo));
    });
    env
}

/// The guardian processes a backup `pid` started: its children running
/// `freezeframe … guardian` (not, say, a `btrfs` or `lvcreate` it runs).
pub fn guardians(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|c| {
            std::fs::read(format!("/proc/{c}/cmdline"))
                .map(|cmd| cmd.split(|&b| b == 0).any(|arg| arg == b"guardian"))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILLs a process we started, by PID.
pub fn kill9(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

/// Creates in `p` every kind of entry an archive must carry: file types,
/// modes, owners, xattrs and ACLs, hardlinks, holes, odd names and times.
pub fn every_file_type(p: &std::path::Path) {
    let script = r#"
set -e
cd "$1"
mkdir -p d/sub && echo hello > d/sub/f
head -c 3000000 /dev/urandom > big.bin
: > empty
printf 'x' > setuid && chmod 4755 setuid
mkdir sgid && chmod 2775 sgid
mkdir sticky && chmod 1777 sticky
ln -s d/sub/f rel-link
ln -s /nonexistent/abs abs-link
echo hl > hard1 && ln hard1 d/hard2 && ln hard1 sgid/hard3
mkfifo fifo
mknod chardev c 1 3
mknod blockdev b 7 200
echo own > owned && chown 1234:5678 owned
echo big > bigid && chown 3000000:3000001 bigid
setfattr -n user.note -v 'hello world' owned
setfattr -n trusted.secret -v s3cr3t owned
echo cap > capfile && setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= capfile
echo acl > acl-file && setfacl -m u:1000:rw,g:50:r acl-file
setfacl -d -m u:1000:rwx d
truncate -s 64M sparse && dd if=/dev/urandom of=sparse bs=4096 count=16 seek=4096 conv=notrunc status=none
truncate -s 8M sparse-tail && printf data | dd of=sparse-tail conv=notrunc status=none
python3 - <<'PY'
import os, socket
deep = "/".join("segment%02d_%s" % (i, "x" * 40) for i in range(6))
os.makedirs(deep)
open(os.path.join(deep, "n" * 120), "w").write("deep\n")
open(b"bad-\xff-name", "w").write("x")
open("sp ace\nnewline", "w").write("x")
s = socket.socket(socket.AF_UNIX)
s.bind("sock")
PY
touch -h -d '2001-02-03 04:05:06.123456789' owned
touch -h -d '@1500000000.987654321' rel-link
touch -d '2010-01-01 00:00:00.5' d/sub d sgid
touch -d '2011-01-01 00:00:00.25' .
"#;
    sh(&format!(
        "sh -c '{}' sh {}",
        script.replace('\'', r"'\''"),
        p.display()
    ));
}

/// Unmounts a test's own mount when dropped (also when the test fails).
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
