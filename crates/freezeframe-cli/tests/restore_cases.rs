//! Restore edge cases, for both kinds of target: a relative `--to`, a
//! symlink where `<to>.conf` goes, which backup is restored by default (the
//! newest complete one, a partial one only when named, with what is
//! missing), and an unknown container.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{local_repo_env, privileged, require, which, Ct, Env};

fn run_in(env: &Env, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = env.cmd().current_dir(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn restores_pick_complete_backups_and_never_write_through_symlinks() {
    if !privileged() || !require("setpriv", which("setpriv")) {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    std::fs::write(private.join("ok.txt"), "v1\n").unwrap();
    let conf = vol.dir.path().join("101.conf");
    std::fs::write(&conf, "hostname=ct101\n").unwrap();
    let ct = || Ct {
        id: "101".into(),
        cgroup: cg.rel.clone(),
        private: private.clone(),
        config: Some(conf.clone()),
    };
    let envs = [
        ("tar", Env::new(&vol.volume(), &[ct()], "")),
        ("repository", local_repo_env(&vol.volume(), &[ct()])),
    ];
    // Run 1 complete; run 2 partial (a file it cannot read), with newer data.
    for (_, env) in &envs {
        env.backup_json(&["--all"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(private.join("ok.txt"), "v2\n").unwrap();
    let secret = private.join("secret.key");
    std::fs::write(&secret, "hidden\n").unwrap();
    common::unreadable(&secret);
    for (_, env) in &envs {
        env.backup_partial(&["--all"]);
    }

    for (kind, env) in &envs {
        let work = tempfile::Builder::new()
            .prefix("ff-restore-")
            .tempdir_in("/var/tmp")
            .unwrap();
        // The default is the newest complete backup, run 1.
        let (code, out, err) = run_in(env, work.path(), &["restore", "101", "--to", "plain"]);
        assert_eq!(code, 0, "{kind}: a bare relative --to works: {out}{err}");
        let dest = work.path().join("plain");
        assert_eq!(
            std::fs::read_to_string(dest.join("ok.txt")).unwrap(),
            "v1\n",
            "{kind}"
        );
        assert_eq!(
            std::fs::read_to_string(work.path().join("plain.conf")).unwrap(),
            "hostname=ct101\n",
            "{kind}: the config lands beside it"
        );
        assert!(!err.contains("partial"), "{kind}: {err}");

        // The partial run, when named: restored, with what is missing, exit 3.
        let (_, list, _) = env.run(&["list", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let partial_run = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["result"] == "partial" || r["partial"] == true)
            .and_then(|r| r["run"].as_str())
            .unwrap_or_else(|| panic!("{kind}: no partial run in {list}"))
            .to_owned();
        let (code, out, err) = run_in(
            env,
            work.path(),
            &["restore", "101", "--run", &partial_run, "--to", "named"],
        );
        assert_eq!(code, 3, "{kind}: {out}{err}");
        assert!(
            err.contains("is partial") && err.contains("secret.key"),
            "{kind}: the warning lists what is missing: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(work.path().join("named/ok.txt")).unwrap(),
            "v2\n"
        );

        // A dangling symlink where the config goes: refused before
        // anything is written, and never followed.
        let victim = work.path().join("victim");
        std::os::unix::fs::symlink(&victim, work.path().join("linked.conf")).unwrap();
        let (code, out, err) = run_in(env, work.path(), &["restore", "101", "--to", "linked"]);
        assert_eq!(code, 2, "{kind}: {out}{err}");
        assert!(
            err.contains("linked.conf") && err.contains("symlink"),
            "{kind}: {err}"
        );
        assert!(
            !work.path().join("linked").exists(),
            "{kind}: nothing written"
        );
        let (code, out, err) = run_in(
            env,
            work.path(),
            &["restore", "101", "--to", "linked", "--force"],
        );
        assert_eq!(code, 0, "{kind}: {out}{err}");
        assert!(!victim.exists(), "{kind}: the symlink was followed");
        let meta = std::fs::symlink_metadata(work.path().join("linked.conf")).unwrap();
        assert!(
            meta.is_file(),
            "{kind}: the symlink was replaced by the config"
        );

        // An unknown container is a usage error, like in `backup`.
        let (code, _, err) = run_in(env, work.path(), &["restore", "nosuch", "--to", "x"]);
        assert_eq!(code, 2, "{kind}: {err}");
        assert!(err.contains("unknown container `nosuch`"), "{kind}: {err}");
        assert!(!work.path().join("x").exists());
    }
    drop(cg);
}
