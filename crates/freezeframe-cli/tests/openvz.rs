//! The OpenVZ runtime, driven through the `vzlist`/`vzctl` stand-ins in
//! `tests/standins/` (backed by real cgroups: checkpointed means frozen).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{privileged, require, which, workloads, CgVersion, LoopBtrfs, TestCgroup, TestConfig};
use serde_json::Value;

struct Vz {
    /// Dropped first (fields drop in order): the heartbeat writers must be
    /// gone before `root` is removed, or one recreates its beats file in
    /// the middle of the removal and the folder is left behind.
    cgs: Vec<TestCgroup>,
    root: tempfile::TempDir,
    config: PathBuf,
    target: PathBuf,
    vol: LoopBtrfs,
}

fn standins() -> PathBuf {
    common::manifest_dir().join("tests/standins")
}

impl Vz {
    /// CTs 101 and 102 running (heartbeat writers), 103 stopped. 101's
    /// config names its cgroup (so `snapshot` mode can freeze it).
    fn new() -> Self {
        let vol = LoopBtrfs::new("1G");
        let root = tempfile::Builder::new()
            .prefix("ff-vz-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let r = root.path();
        for d in ["conf", "state", "dump"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        let private = vol.volume().join("private");
        std::fs::write(
            r.join("vz.conf"),
            format!(
                "## Global parameters\nVE_PRIVATE=\"{}/$VEID\"\nDUMPDIR=\"{}/dump\"\n",
                private.display(),
                r.display()
            ),
        )
        .unwrap();
        let mut cgs = Vec::new();
        for (id, running) in [("101", true), ("102", true), ("103", false)] {
            let p = private.join(id);
            std::fs::create_dir_all(p.join("etc")).unwrap();
            std::fs::write(p.join("etc/hostname"), format!("ct{id}\n")).unwrap();
            std::fs::write(p.join("data"), id.repeat(50_000)).unwrap();
            let mut cg = TestCgroup::new(CgVersion::V2);
            if running {
                let beats = r.join(format!("{id}.beats"));
                cg.spawn(&[
                    "python3",
                    workloads().join("heartbeat.py").to_str().unwrap(),
                    beats.to_str().unwrap(),
                ]);
            }
            std::fs::write(
                r.join(format!("conf/{id}.conf")),
                format!(
                    "# OpenVZ CT config\nONBOOT=\"yes\"\nHOSTNAME=\"ct{id}\"\nFF_CGROUP=\"{}\"\n",
                    cg.dir.display()
                ),
            )
            .unwrap();
            std::fs::write(
                r.join(format!("state/{id}")),
                if running { "running\n" } else { "stopped\n" },
            )
            .unwrap();
            cgs.push(cg);
        }
        let target = r.join("backups");
        let config = r.join("freezeframe.toml");
        let text = format!(
            "state_dir = \"{r}/state-ff\"\n\n[target]\npath = \"{t}\"\n\n[backup]\nfreeze_timeout = \"5s\"\n\n[openvz]\nconf_dir = \"{r}\"\n\n\
             [[volume]]\nname = \"vz\"\npath = \"{v}\"\nprovider = \"btrfs\"\n\n\
             [[container]]\nid = \"101\"\nruntime = \"openvz\"\ncgroup = \"{cg}\"\n\n\
             [[container]]\nid = \"102\"\nruntime = \"openvz\"\n\n\
             [[container]]\nid = \"103\"\nruntime = \"openvz\"\n",
            r = r.display(),
            t = target.display(),
            v = vol.volume().display(),
            cg = cgs[0].rel,
        );
        std::fs::write(&config, text).unwrap();
        Self {
            root,
            cgs,
            config,
            target,
            vol,
        }
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)], path: bool) -> (i32, String, String) {
        let mut c = common::freezeframe(Some(&self.config));
        let p = if path {
            format!(
                "{}:{}",
                standins().display(),
                std::env::var("PATH").unwrap()
            )
        } else {
            "/usr/bin:/bin".into()
        };
        c.args(args)
            .env("FF_VZ_ROOT", self.root.path())
            .env("PATH", p);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-9),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_env(args, &[], true)
    }

    fn backup(&self, args: &[&str]) -> Value {
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(&a);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str(&out).unwrap()
    }

    fn state(&self, id: &str) -> String {
        std::fs::read_to_string(self.root.path().join(format!("state/{id}")))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn beats(&self, id: &str) -> Vec<i128> {
        std::fs::read_to_string(self.root.path().join(format!("{id}.beats")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    fn wait_beats(&self, id: &str) {
        let t = Instant::now();
        while self.beats(id).len() < 20 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no heartbeat from {id}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn ct<'a>(m: &'a Value, id: &str) -> &'a Value {
    m["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

/// No heartbeat between frozen and thaw: the CT really was at rest.
fn assert_at_rest(vz: &Vz, id: &str, c: &Value) {
    std::thread::sleep(Duration::from_millis(150));
    let w = &c["window"];
    let (frozen, thaw) = (
        w["frozen_ns"].as_i64().unwrap() as i128,
        w["thaw_ns"].as_i64().unwrap() as i128,
    );
    let inside: Vec<i128> = vz
        .beats(id)
        .into_iter()
        .filter(|&b| b > frozen && b < thaw)
        .collect();
    assert!(inside.is_empty(), "{id} ran while at rest: {inside:?}");
    assert!(
        vz.beats(id).iter().any(|&b| b > thaw),
        "{id} did not run again"
    );
}

fn files(m: &Value, id: &str) -> Vec<String> {
    ct(m, id)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn checkpoint_mode_keeps_the_dump_and_restores_the_container() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    vz.wait_beats("101");
    vz.wait_beats("102");
    let m = vz.backup(&["101", "102", "--mode", "checkpoint"]);
    for id in ["101", "102"] {
        let c = ct(&m, id);
        assert_eq!(
            (
                c["result"].as_str(),
                c["mode"].as_str(),
                c["runtime"].as_str()
            ),
            (Some("ok"), Some("checkpoint"), Some("openvz")),
            "{c}"
        );
        assert_eq!(
            files(&m, id),
            [
                format!("{id}.tar.zst"),
                format!("{id}.dump"),
                format!("{id}.conf")
            ]
        );
        assert_at_rest(&vz, id, c);
        assert_eq!(vz.state(id), "running", "vzctl restore ran");
    }
    assert!(
        std::fs::read_dir(vz.root.path().join("dump"))
            .unwrap()
            .next()
            .is_none(),
        "the dump moved into the run"
    );
    let run = m["run"].as_str().unwrap();
    let dump = std::fs::read_to_string(vz.target.join(run).join("101.dump")).unwrap();
    assert!(dump.starts_with("FFDUMP ctid=101"));
    let conf = std::fs::read_to_string(vz.target.join(run).join("101.conf")).unwrap();
    assert!(conf.contains("HOSTNAME=\"ct101\""));
    let (code, out, _) = vz.run(&["verify"]);
    assert_eq!(code, 0, "{out}");

    // Restore files, config and dump; --with-memory brings the CT back from it.
    let to = restore_101_with_memory(&vz);
    assert!(
        vz.root.path().join("restored/101.conf").exists()
            && vz.root.path().join("restored/101.dump").exists()
    );
    assert!(!to.join(".freezeframe").exists());
}

/// Stops CT 101 (stand-in state, cgroup frozen), restores it to
/// `restored/101` with `--with-memory`, and checks it runs again from its
/// dump. Returns the restored tree.
fn restore_101_with_memory(vz: &Vz) -> PathBuf {
    std::fs::write(vz.root.path().join("state/101"), "stopped\n").unwrap();
    std::fs::write(vz.cgs[0].dir.join("cgroup.freeze"), "1").unwrap();
    let to = vz.root.path().join("restored/101");
    let (code, out, err) = vz.run(&[
        "restore",
        "101",
        "--to",
        to.to_str().unwrap(),
        "--with-memory",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(to.join("etc/hostname")).unwrap(),
        "ct101\n"
    );
    assert!(out.contains("restored from its memory dump"), "{out}");
    assert_eq!(vz.state("101"), "running");
    assert!(!vz.cgs[0].is_frozen());
    to
}

#[test]
fn snapshot_suspend_and_stop_modes_and_a_stopped_container() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    vz.wait_beats("101");
    vz.wait_beats("102");
    // snapshot: 101 exposes its cgroup and is frozen; 102 does not and falls
    // back to a checkpoint, said in the manifest; 103 is stopped.
    let m = vz.backup(&["--all"]);
    let (c1, c2, c3) = (ct(&m, "101"), ct(&m, "102"), ct(&m, "103"));
    assert_eq!(
        (c1["mode"].as_str(), c1["note"].as_str()),
        (Some("snapshot"), None),
        "{c1}"
    );
    assert_at_rest(&vz, "101", c1);
    assert_eq!(c2["mode"], "checkpoint");
    assert!(
        c2["note"].as_str().unwrap().contains("exposes no cgroup"),
        "{c2}"
    );
    assert_at_rest(&vz, "102", c2);
    assert_eq!(c3["result"], "ok");
    assert!(c3["mode"].is_null() && c3["window"].is_null(), "{c3}");
    assert!(c3["note"].as_str().unwrap().contains("stopped"), "{c3}");
    assert_eq!(vz.state("103"), "stopped", "a stopped CT is left stopped");
    for mode in ["suspend", "stop"] {
        let m = vz.backup(&["101", "102", "--mode", mode]);
        for id in ["101", "102"] {
            let c = ct(&m, id);
            assert_eq!(
                (c["result"].as_str(), c["mode"].as_str()),
                (Some("ok"), Some(mode)),
                "{c}"
            );
            assert_at_rest(&vz, id, c);
            assert_eq!(vz.state(id), "running", "{mode}: resumed/started again");
        }
    }
    assert!(vz.vol.snapshot_folder().is_empty());
}

#[test]
fn list_containers_with_both_vzlist_formats() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    for legacy in ["0", "1"] {
        let (code, out, err) = vz.run_env(
            &["list-containers", "--json"],
            &[("FF_VZ_LEGACY", legacy)],
            true,
        );
        assert_eq!(code, 0, "{err}");
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        let r103 = rows.iter().find(|r| r["id"] == "103").unwrap();
        assert_eq!(
            (
                r103["state"].as_str(),
                r103["volume"].as_str(),
                r103["provider"].as_str()
            ),
            (Some("stopped"), Some("vz"), Some("btrfs")),
            "{r103}"
        );
        assert!(r103["private"].as_str().unwrap().ends_with("private/103"));
        assert_eq!(rows.iter().filter(|r| r["runtime"] == "openvz").count(), 3);
    }
    let (code, out, _) = vz.run(&["list-containers"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("RUNTIME") && out.contains("101") && out.contains("running"),
        "{out}"
    );
}

#[test]
fn bad_ctid_missing_tools_and_a_killed_checkpoint() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    vz.wait_beats("101");
    let mut c = TestConfig::load(&vz.config);
    c.merge("[[container]]\nid = \"999\"\nruntime = \"openvz\"");
    c.save(&vz.config);
    let (code, _, err) = vz.run(&["backup", "999"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no such container") && err.contains("101, 102, 103"),
        "{err}"
    );
    let (code, _, err) = vz.run_env(&["backup", "101"], &[], false);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("vzlist") && err.contains("installed"), "{err}");
    assert!(vz.cgs.iter().all(|c| !c.is_frozen()));
    assert!(!vz.target.exists() || std::fs::read_dir(&vz.target).unwrap().count() == 0);
    // Killed while checkpointed: the guardian runs `vzctl restore` from the journal.
    let (code, _, _) = vz.run_env(
        &["backup", "101", "--mode", "checkpoint"],
        &[("FREEZEFRAME_FAULT", "after-freeze")],
        true,
    );
    assert_eq!(code, -9);
    let t = Instant::now();
    while vz.state("101") != "running" || vz.cgs[0].is_frozen() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still {} after the kill",
            vz.state("101")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out, err) = vz.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(vz.vol.snapshot_folder().is_empty());
}

#[test]
fn checkpoint_into_a_repository_keeps_the_dump_and_restores_from_it() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    let r = vz.root.path();
    std::fs::write(r.join("repo.pass"), "vz repository password\n").unwrap();
    let mut c = TestConfig::load(&vz.config);
    c.repository(&common::config::path(&r.join("repo")), &r.join("repo.pass"));
    c.save(&vz.config);
    let (code, out, err) = vz.run(&["init"]);
    assert_eq!(code, 0, "{out}{err}");
    vz.wait_beats("101");

    let m = vz.backup(&["101", "--mode", "checkpoint"]);
    let c = ct(&m, "101");
    assert_eq!(
        (c["result"].as_str(), c["mode"].as_str()),
        (Some("ok"), Some("checkpoint")),
        "{c}"
    );
    assert!(c["repository"]["snapshot"].is_string(), "{c}");
    assert_at_rest(&vz, "101", c);
    assert_eq!(vz.state("101"), "running", "vzctl restore ran");
    assert!(
        std::fs::read_dir(r.join("dump")).unwrap().next().is_none(),
        "the dump moved into the repository"
    );
    let (code, out, _) = vz.run(&["verify", "--read-data"]);
    assert_eq!(code, 0, "{out}");

    // Files, config and dump come back from the snapshot; --with-memory
    // brings the CT back from the dump.
    let to = restore_101_with_memory(&vz);
    assert!(
        !to.join(".freezeframe").exists(),
        "the reserved folder stays out of the tree"
    );
    let conf = std::fs::read_to_string(r.join("restored/101.conf")).unwrap();
    assert!(conf.contains("HOSTNAME=\"ct101\""), "{conf}");
    let dump = std::fs::read_to_string(r.join("restored/101.dump")).unwrap();
    assert!(dump.starts_with("FFDUMP ctid=101"), "{dump}");
}

/// Runs the stand-ins by absolute path with `FF_VZ_ROOT` set, as `PATH`
/// and the environment would on a host, without touching this process's
/// own environment.
struct StandinRunner {
    root: PathBuf,
}

impl freezeframe::CommandRunner for StandinRunner {
    fn run(
        &self,
        cmd: &freezeframe::Cmd,
    ) -> Result<freezeframe::CommandOutput, freezeframe::CommandError> {
        let prog = standins().join(cmd.program());
        let mut c = freezeframe::Cmd::new(prog.to_str().unwrap()).env("FF_VZ_ROOT", &self.root);
        for a in cmd.args() {
            c = c.arg(a);
        }
        for (k, v) in cmd.envs() {
            c = c.env(k, v);
        }
        if let Some(t) = cmd.time_limit() {
            c = c.timeout(t);
        }
        freezeframe::SystemRunner.run(&c)
    }
}

#[test]
fn the_openvz_runtime_keeps_the_contract_in_every_mode() {
    use freezeframe::contract::{runtime_contract, RuntimeSubject};
    use freezeframe::Mode;
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    let config = freezeframe::load(&vz.config).unwrap();
    let runtime = freezeframe::OpenvzRuntime::new(
        std::sync::Arc::new(StandinRunner {
            root: vz.root.path().to_owned(),
        }),
        config.openvz.conf_dir.clone(),
        freezeframe::CgroupRuntime::new(freezeframe::host_cgroup_mounts()),
    );
    // 101 names its cgroup; 102 does not (snapshot falls back to a
    // checkpoint).
    let cases = [
        (0, Mode::Snapshot),
        (0, Mode::Checkpoint),
        (0, Mode::Suspend),
        (0, Mode::Stop),
        (1, Mode::Snapshot),
    ];
    for (i, mode) in cases {
        runtime_contract(&RuntimeSubject {
            runtime: &runtime,
            spec: config.containers[i].clone(),
            mode,
            at_rest: &|| vz.cgs[i].is_frozen(),
        });
    }
}

#[test]
fn restore_as_a_new_ctid_registers_it_and_nothing_half() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let vz = Vz::new();
    let r = vz.root.path();
    let conf103 = r.join("conf/103.conf");
    let mut c = std::fs::read_to_string(&conf103).unwrap();
    c.push_str("VE_ROOT=\"/vz/root/$VEID\"\nIP_ADDRESS=\"10.0.0.3\"\nNETIF=\"ifname=eth0,mac=00:18:51:aa:bb:cc,host_ifname=veth103.0,host_mac=00:18:51:dd:ee:ff\"\n");
    std::fs::write(&conf103, c).unwrap();
    vz.backup(&["103"]);
    let private = vz.vol.volume().join("private");
    let (confs, privates) = (
        common::names_in(&r.join("conf")),
        common::names_in(&private),
    );

    // A CTID that exists is refused, with nothing written.
    let (code, _, err) = vz.run(&["restore", "103", "--as", "102"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("exists") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        (
            common::names_in(&r.join("conf")),
            common::names_in(&private)
        ),
        (confs.clone(), privates.clone())
    );

    let (code, out, err) = vz.run(&["restore", "103", "--as", "203", "--hostname", "ct203"]);
    assert_eq!(code, 0, "{out}{err}");
    let conf = std::fs::read_to_string(r.join("conf/203.conf")).unwrap();
    assert!(conf.contains("HOSTNAME=\"ct203\"\n"), "{conf}");
    assert!(conf.contains("VE_ROOT=\"/vz/root/$VEID\"\n"), "{conf}");
    assert!(conf.contains("host_ifname=veth203.0,"), "{conf}");
    assert!(
        !conf.contains("IP_ADDRESS") && !conf.contains("aa:bb:cc"),
        "{conf}"
    );
    assert!(conf.contains("FF_CGROUP="), "other keys kept: {conf}");
    assert!(err.contains("dropped IP_ADDRESS"), "{err}");
    for f in ["data", "etc/hostname"] {
        assert_eq!(
            std::fs::read(private.join("203").join(f)).unwrap(),
            std::fs::read(private.join("103").join(f)).unwrap(),
            "{f}"
        );
    }
    // OpenVZ's own listing shows it, at its VE_PRIVATE.
    let (code, out, _) = vz.run(&["list-containers", "--json"]);
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let row = rows
        .iter()
        .find(|r| r["id"] == "203")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        row["private"].as_str(),
        private.join("203").to_str(),
        "{row}"
    );

    let (code, out, err) = vz.run(&["restore", "103", "--as", "205", "--keep-network"]);
    assert_eq!(code, 0, "{out}{err}");
    let conf = std::fs::read_to_string(r.join("conf/205.conf")).unwrap();
    assert!(conf.contains("IP_ADDRESS=\"10.0.0.3\""), "{conf}");

    // Killed between the private area and the config: recover removes the
    // private area, nothing else.
    let (code, _, _) = vz.run_env(
        &["restore", "103", "--as", "204"],
        &[("FREEZEFRAME_FAULT", "before-registering-config")],
        true,
    );
    assert_eq!(code, -9);
    assert!(private.join("204").exists() && !r.join("conf/204.conf").exists());
    let (code, out, err) = vz.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!private.join("204").exists(), "{out}{err}");
    assert!(private.join("203").join("data").exists() && private.join("103").exists());
    assert!(
        !common::names_in(&private)
            .iter()
            .any(|n| n.starts_with('.')),
        "{:?}",
        common::names_in(&private)
    );
    assert!(!common::names_in(&r.join("conf"))
        .iter()
        .any(|n| n.starts_with('.')));
}
