//! The LXC runtime against real LXC containers (busybox template) whose
//! root file systems live on a loop-backed btrfs volume: back up while a
//! workload writes, restore it as a new container (`--as`, also
//! unprivileged with `--map-ids`), start both.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{privileged, require, sh, unique, which, LoopBtrfs};
use serde_json::Value;

/// A busybox container under `lxcpath`; stopped and destroyed on drop.
struct Lxc {
    path: PathBuf,
    name: String,
}

impl Lxc {
    fn create(path: &Path, name: &str) -> Self {
        sh(&format!(
            "lxc-create -q -P {} -n {name} -t busybox >/dev/null",
            path.display()
        ));
        let me = Self {
            path: path.to_owned(),
            name: name.to_owned(),
        };
        me.no_network();
        me
    }

    /// There is no bridge on the test machines: no network device.
    fn no_network(&self) {
        let cfg = self.path.join(&self.name).join("config");
        let text: String = std::fs::read_to_string(&cfg)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("lxc.net."))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&cfg, text + "lxc.net.0.type = empty\n").unwrap();
    }

    fn tool(&self, tool: &str) -> String {
        format!("{tool} -P {} -n {}", self.path.display(), self.name)
    }

    fn start(&self) {
        sh(&format!("{} -d", self.tool("lxc-start")));
        let t = Instant::now();
        while self.state() != "RUNNING" {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn state(&self) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(self.tool("lxc-info") + " -s")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("State:")
            .trim()
            .to_owned()
    }

    fn rootfs(&self) -> PathBuf {
        self.path.join(&self.name).join("rootfs")
    }

    /// A workload inside: appends a numbered line to /log every ~2 ms.
    fn run_writer(&self) {
        sh(&format!(
            "{} -- /bin/sh -c 'i=0; while :; do i=$((i+1)); echo \"line $i\" >> /log; usleep 2000; done' >/dev/null 2>&1 &",
            self.tool("lxc-attach")
        ));
        let t = Instant::now();
        while std::fs::read_to_string(self.rootfs().join("log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
            < 20
        {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the writer in {} never wrote",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lxc {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} -k >/dev/null 2>&1; {} -f >/dev/null 2>&1",
                self.tool("lxc-stop"),
                self.tool("lxc-destroy")
            ))
            .status();
    }
}

fn config(dir: &Path, vol: &Path, lxcpath: &Path, names: &[&str]) -> PathBuf {
    let mut t = format!(
        "state_dir = \"{d}/state\"\n\n[target]\npath = \"{d}/backups\"\n\n[backup]\nfreeze_timeout = \"10s\"\n\n[lxc]\nlxcpath = \"{l}\"\n\n[[volume]]\nname = \"lxc\"\npath = \"{v}\"\nprovider = \"btrfs\"\n",
        d = dir.display(),
        l = lxcpath.display(),
        v = vol.display()
    );
    for n in names {
        t.push_str(&format!(
            "\n[[container]]\nid = \"{n}\"\nruntime = \"lxc\"\n"
        ));
    }
    let p = dir.join("freezeframe.toml");
    std::fs::write(&p, t).unwrap();
    p
}

fn run(config: &Path, args: &[&str], path: Option<&str>) -> (i32, String, String) {
    let mut c = common::freezeframe(Some(config));
    c.args(args);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-9),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lxc_available() -> bool {
    privileged()
        && require(
            "lxc (apt-get install lxc busybox-static)",
            which("lxc-create") && which("busybox"),
        )
}

#[test]
fn real_lxc_backup_restore_into_a_new_container_and_start_it() {
    if !lxc_available() {
        return;
    }
    let vol = LoopBtrfs::new("1G");
    let lxcpath = vol.volume().join("lxc");
    std::fs::create_dir(&lxcpath).unwrap();
    let name = unique("ffc").replace('-', "");
    let c = Lxc::create(&lxcpath, &name);
    c.start();
    c.run_writer();
    let dir = tempfile::Builder::new()
        .prefix("ff-lxc-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let cfg = config(dir.path(), &vol.volume(), &lxcpath, &[&name]);

    let (code, out, err) = run(&cfg, &["list-containers", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let row = rows.iter().find(|r| r["id"] == name.as_str()).unwrap();
    assert_eq!(
        (row["state"].as_str(), row["volume"].as_str()),
        (Some("RUNNING"), Some("lxc")),
        "{row}"
    );

    for mode in ["snapshot", "stop"] {
        let (code, out, err) = run(&cfg, &["backup", "--all", "--json", "--mode", mode], None);
        assert_eq!(code, 0, "{mode}: {out}{err}");
        let m: Value = serde_json::from_str(&out).unwrap();
        let ct = &m["containers"][0];
        assert_eq!(
            (
                ct["result"].as_str(),
                ct["mode"].as_str(),
                ct["runtime"].as_str()
            ),
            (Some("ok"), Some(mode), Some("lxc")),
            "{ct}"
        );
        assert!(ct["freeze_ms"].as_f64().is_some());
        assert!(
            ct["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == format!("{name}.conf")),
            "config copied: {ct}"
        );
        assert_eq!(
            c.state(),
            "RUNNING",
            "{mode}: running again after the backup"
        );
    }
    assert!(vol.snapshot_folder().is_empty());

    // Restore as a new container and start it beside the original.
    let new = format!("{name}r");
    let other = Lxc::create(&lxcpath, &format!("{name}o"));
    let before = common::names_in(&lxcpath);
    let (code, _, err) = run(&cfg, &["restore", &name, "--as", &other.name], None);
    assert_eq!(code, 2, "a name LXC has is refused: {err}");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(common::names_in(&lxcpath), before, "nothing written");
    drop(other);

    let (code, out, err) = run(&cfg, &["restore", &name, "--as", &new], None);
    assert_eq!(code, 0, "{out}{err}");
    let restored = Lxc {
        path: lxcpath.clone(),
        name: new.clone(),
    };
    assert_eq!(
        common::names_in(&lxcpath.join(&new)),
        ["config", "rootfs"],
        "the container folder holds its config and root file system only"
    );
    let conf = std::fs::read_to_string(lxcpath.join(&new).join("config")).unwrap();
    assert!(conf.contains(&format!("lxc.uts.name = {new}\n")), "{conf}");
    assert!(
        conf.contains(&format!(
            "lxc.rootfs.path = dir:{}\n",
            restored.rootfs().display()
        )),
        "{conf}"
    );
    assert!(
        !conf.contains(&format!("/{name}/")),
        "nothing names the original: {conf}"
    );
    let restored_log = std::fs::read_to_string(restored.rootfs().join("log")).unwrap();
    let live_log = std::fs::read_to_string(c.rootfs().join("log")).unwrap();
    assert!(
        restored_log.ends_with('\n') && live_log.starts_with(&restored_log),
        "the restored log is a consistent prefix"
    );
    restored.start();
    assert_eq!(restored.state(), "RUNNING");
    assert_eq!(c.state(), "RUNNING", "both run");
    let (code, out, _) = run(&cfg, &["list-containers", "--json"], None);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("\"{new}\"")),
        "LXC lists the copy: {out}"
    );

    // Unprivileged: --map-ids shifts every owner and writes the id map.
    let unpriv = format!("{name}u");
    let (code, out, err) = run(
        &cfg,
        &[
            "restore",
            &name,
            "--as",
            &unpriv,
            "--map-ids",
            "b 0 200000 65536",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let u = Lxc {
        path: lxcpath.clone(),
        name: unpriv.clone(),
    };
    let conf = std::fs::read_to_string(lxcpath.join(&unpriv).join("config")).unwrap();
    assert!(
        conf.contains("lxc.idmap = u 0 200000 65536\nlxc.idmap = g 0 200000 65536\n"),
        "{conf}"
    );
    use std::os::unix::fs::MetadataExt;
    for p in [
        lxcpath.join(&unpriv),
        u.rootfs(),
        u.rootfs().join("bin/busybox"),
        u.rootfs().join("log"),
    ] {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (200000, 200000), "{}", p.display());
    }
    drop(u);
    drop(restored);
    drop(c);
}

#[test]
fn lxc_bad_input() {
    if !lxc_available() {
        return;
    }
    let vol = LoopBtrfs::new("256M");
    let lxcpath = vol.volume().join("lxc");
    std::fs::create_dir(&lxcpath).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("ff-lxc-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let cfg = config(dir.path(), &vol.volume(), &lxcpath, &["nosuch"]);
    let (code, _, err) = run(&cfg, &["backup", "nosuch"], None);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no such LXC container"), "{err}");
    let c = Lxc::create(&lxcpath, &unique("ffb").replace('-', ""));
    let cfg = config(dir.path(), &vol.volume(), &lxcpath, &[&c.name]);
    let (code, _, err) = run(&cfg, &["backup", "--all"], Some("/nonexistent"));
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("lxc-info") && err.contains("installed"),
        "{err}"
    );
    // A stopped container is backed up from its live tree, unfrozen.
    let (code, out, err) = run(&cfg, &["backup", "--all", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let m: Value = serde_json::from_str(&out).unwrap();
    assert!(
        m["containers"][0]["note"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{m}"
    );
    assert_eq!(c.state(), "STOPPED");
}

#[test]
fn the_lxc_runtime_keeps_the_contract() {
    use freezeframe::contract::{runtime_contract, RuntimeSubject};
    use freezeframe::Mode;
    if !lxc_available() {
        return;
    }
    let vol = LoopBtrfs::new("512M");
    let lxcpath = vol.volume().join("lxc");
    std::fs::create_dir(&lxcpath).unwrap();
    let name = unique("ffk").replace('-', "");
    let c = Lxc::create(&lxcpath, &name);
    c.start();
    let dir = tempfile::Builder::new()
        .prefix("ff-lxc-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let config = freezeframe::load(&config(dir.path(), &vol.volume(), &lxcpath, &[&name])).unwrap();
    let runtime = freezeframe::LxcRuntime::new(
        std::sync::Arc::new(freezeframe::SystemRunner),
        config.lxc.lxcpath.clone(),
    );
    for mode in [Mode::Snapshot, Mode::Stop] {
        // At rest as LXC's own tools see it: frozen, or stopped.
        runtime_contract(&RuntimeSubject {
            runtime: &runtime,
            spec: config.containers[0].clone(),
            mode,
            at_rest: &|| {
                matches!(
                    c.state().as_str(),
                    "FROZEN" | "STOPPED" | "FREEZING" | "STOPPING"
                )
            },
        });
        c.start();
    }
}
