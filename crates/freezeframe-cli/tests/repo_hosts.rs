//! Many hosts, one repository: two hosts (each its own kernel host name,
//! config and state dir) back up into one S3 repository at the same time,
//! a third prunes it; every snapshot kept restores, restic's `check
//! --read-data` is clean, and each host's snapshots are its own (a
//! restore takes another host's only when named).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};

use common::restic::restic;
use common::tree::{as_repository_restores as restorable, assert_same, describe};
use common::{privileged, repo_env_with, require, which, Ct, Env, LoopBtrfs, TestCgroup};

/// `freezeframe` with `env`'s config, run in a UTS namespace of its own
/// whose host name is `host`.
fn on_host(env: &Env, host: &str, args: &[&str]) -> Command {
    let mut c = common::bin::wrapped(
        &[
            "unshare",
            "--uts",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            host,
        ],
        Some(&env.config),
    );
    c.args(args).envs(env.vars.iter().map(|(k, v)| (k, v)));
    c
}

fn run_on(env: &Env, host: &str, args: &[&str]) -> (i32, String, String) {
    let out = on_host(env, host, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One host's container: volume, process, private area, config.
struct Host {
    name: &'static str,
    id: String,
    env: Env,
    private: std::path::PathBuf,
    _cg: TestCgroup,
    _vol: LoopBtrfs,
}

fn fill(private: &std::path::Path, tag: &str, shared: &[u8]) {
    // What both hosts hold alike (deduplicated across hosts), and their own.
    std::fs::write(private.join("shared.bin"), shared).unwrap();
    let own: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ tag.as_bytes()[0])
        .collect();
    std::fs::write(private.join(format!("own-{tag}.bin")), own).unwrap();
    std::fs::write(private.join("note.txt"), format!("{tag}\n")).unwrap();
}

#[test]
fn two_hosts_back_up_into_one_s3_repository_at_once_and_a_third_prunes() {
    if !privileged() || !require("restic", which("restic")) || !require("unshare", which("unshare"))
    {
        return;
    }
    let Some(s3) = common::s3::s3_repo() else {
        return;
    };
    let keys: Vec<(&str, &str)> = s3
        .keys
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let shared: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    let hosts: Vec<Host> = ["ff-host-a", "ff-host-b"]
        .into_iter()
        .map(|name| {
            let id = format!("web-{}", &name[8..]);
            let (vol, cg, private) = common::volume_with_container(&id);
            fill(&private, name, &shared);
            let ct = Ct {
                id: id.clone(),
                cgroup: cg.rel.clone(),
                private: private.clone(),
                config: None,
            };
            let env = repo_env_with(&vol.volume(), &[ct], "opendal:s3", &s3.target, &keys);
            Host {
                name,
                id,
                env,
                private,
                _cg: cg,
                _vol: vol,
            }
        })
        .collect();
    let (code, out, err) = run_on(&hosts[0].env, hosts[0].name, &["init"]);
    assert_eq!(code, 0, "init: {out}{err}");

    // Two rounds, both hosts at once.
    let mut runs: Vec<Vec<String>> = vec![Vec::new(); hosts.len()];
    for round in 0..2 {
        let children: Vec<Child> = hosts
            .iter()
            .map(|h| {
                on_host(&h.env, h.name, &["backup", "--json", &h.id])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "round {round}, {}: {text}{}",
                hosts[i].name,
                String::from_utf8_lossy(&out.stderr)
            );
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            runs[i].push(m["run"].as_str().unwrap().to_owned());
        }
        if round == 0 {
            for h in &hosts {
                std::fs::write(h.private.join("note.txt"), format!("{} changed\n", h.name))
                    .unwrap();
            }
        }
    }

    // Four snapshots, each host's under its own name.
    let out = restic(&hosts[0].env, &s3.restic, &["snapshots", "--json"]);
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hostnames: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hostnames.len(), 4, "{snaps}");
    for h in &hosts {
        assert_eq!(
            hostnames.iter().filter(|n| **n == h.name).count(),
            2,
            "{snaps}"
        );
    }

    // A third host prunes: the newest of each host's container stays.
    let (code, out, err) = run_on(&hosts[0].env, "ff-host-c", &["prune", "--keep-last", "1"]);
    assert_eq!(code, 0, "prune from a third host: {out}{err}");
    restic(&hosts[0].env, &s3.restic, &["check", "--read-data"]);
    for (i, h) in hosts.iter().enumerate() {
        let to = h.env.dir.path().join("restored");
        let (code, out, err) = run_on(
            &h.env,
            h.name,
            &[
                "restore",
                &h.id,
                "--run",
                &runs[i][1],
                "--to",
                to.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{}: {out}{err}", h.name);
        assert_same(
            h.name,
            &restorable(describe(&h.private)),
            &restorable(describe(&to)),
        );
        let gone = h.env.dir.path().join("gone");
        let (code, _, err) = run_on(
            &h.env,
            h.name,
            &[
                "restore",
                &h.id,
                "--run",
                &runs[i][0],
                "--to",
                gone.to_str().unwrap(),
            ],
        );
        assert_ne!(code, 0, "{}: the pruned run is gone: {err}", h.name);
    }

    // Another host's container is not restored for this host's by
    // accident: without --run, host b is told whose snapshots there are.
    let (a, b) = (&hosts[0], &hosts[1]);
    let to = b.env.dir.path().join("from-a");
    let (code, _, err) = run_on(
        &b.env,
        b.name,
        &["restore", &a.id, "--to", to.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no snapshot from this host") && err.contains(a.name) && err.contains("--run"),
        "says whose and what to do: {err}"
    );
    assert!(!to.exists(), "nothing written");
    let (code, out, err) = run_on(
        &b.env,
        b.name,
        &[
            "restore",
            &a.id,
            "--run",
            &runs[0][1],
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "named, it restores on another host: {out}{err}");
    assert_same(
        "a's container on b",
        &restorable(describe(&a.private)),
        &restorable(describe(&to)),
    );
}
