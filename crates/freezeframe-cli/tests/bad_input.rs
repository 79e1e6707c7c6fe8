//! Bad input gives a clear error and a documented exit code, and leaves no
//! container frozen, no snapshot and no half-written file.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{privileged, sh, CgVersion, Ct, Env, LoopBtrfs, TestCgroup};

const USAGE: i32 = 2;
const PRECONDITION: i32 = 4;
const FAILURE: i32 = 1;

struct Bed {
    vol: LoopBtrfs,
    cg: TestCgroup,
    private: std::path::PathBuf,
}

fn bed() -> Bed {
    let vol = LoopBtrfs::new("512M");
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "1000"]);
    let private = vol.volume().join("101");
    std::fs::create_dir(&private).unwrap();
    std::fs::write(private.join("f"), "x").unwrap();
    Bed { vol, cg, private }
}

fn ct(b: &Bed) -> Ct {
    Ct {
        id: "101".into(),
        cgroup: b.cg.rel.clone(),
        private: b.private.clone(),
        config: None,
    }
}

/// Nothing frozen, no snapshot, no run folder or temp file in the target.
fn assert_untouched(b: &Bed, env: &Env) {
    assert!(!b.cg.is_frozen(), "container left frozen");
    assert!(
        b.vol.snapshot_folder().is_empty(),
        "snapshot left: {:?}",
        b.vol.snapshot_folder()
    );
    assert!(
        env.target_entries().is_empty(),
        "target written: {:?}",
        env.target_entries()
    );
}

fn expect(env: &Env, args: &[&str], code: i32, needles: &[&str]) {
    let (got, out, err) = env.run(args);
    assert_eq!(got, code, "{args:?}: {out}{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected `{n}` in: {err}");
    }
}

#[test]
fn unknown_container_and_unsupported_mode_are_usage_errors() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    expect(
        &env,
        &["backup", "nope"],
        USAGE,
        &["unknown container `nope`", "101"],
    );
    expect(&env, &["backup"], USAGE, &["--all"]);
    expect(
        &env,
        &["backup", "101", "--mode", "stop"],
        USAGE,
        &["not supported by the cgroup runtime"],
    );
    expect(
        &env,
        &["backup", "101", "--compress", "bzip2", "--level", "12"],
        USAGE,
        &["1..=9"],
    );
    expect(&env, &["backup", "--bogus"], USAGE, &["--bogus"]);
    assert_untouched(&b, &env);
}

#[test]
fn malformed_config_names_the_line() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    env.edit(|c| {
        c.set("backup.compres", "zstd");
    });
    let line = std::fs::read_to_string(&env.config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("compres "))
        .expect("the misspelt key is in the file")
        + 1;
    expect(
        &env,
        &["backup", "101"],
        USAGE,
        &["compres", &format!("line {line}"), "expected one of"],
    );
    std::fs::write(&env.config, "[target\npath=").unwrap();
    expect(
        &env,
        &["backup", "101"],
        USAGE,
        &["invalid config", "line 1"],
    );
    std::fs::remove_file(&env.config).unwrap();
    expect(
        &env,
        &["backup", "101"],
        USAGE,
        &["cannot read config", "FREEZEFRAME_CONFIG"],
    );
    assert_untouched(&b, &env);
}

#[test]
fn missing_private_dir_missing_cgroup_and_non_btrfs_volume_are_preconditions() {
    if !privileged() {
        return;
    }
    let b = bed();
    let mut missing = ct(&b);
    missing.private = b.vol.volume().join("gone");
    let env = Env::new(&b.vol.volume(), &[missing], "");
    expect(
        &env,
        &["backup", "101"],
        PRECONDITION,
        &["private dir", "gone"],
    );
    assert_untouched(&b, &env);

    let mut nocg = ct(&b);
    nocg.cgroup = "ff-no-such-cgroup".into();
    let env = Env::new(&b.vol.volume(), &[nocg], "");
    expect(
        &env,
        &["backup", "101"],
        PRECONDITION,
        &["ff-no-such-cgroup", "not found"],
    );
    assert_untouched(&b, &env);

    let plain = tempfile::Builder::new()
        .prefix("ff-plain-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let private = plain.path().join("101");
    std::fs::create_dir(&private).unwrap();
    let env = Env::new(plain.path(), &[Ct { private, ..ct(&b) }], "");
    expect(&env, &["backup", "101"], PRECONDITION, &["is not on btrfs"]);
    assert_untouched(&b, &env);
}

#[test]
fn unwritable_target_is_a_precondition() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    std::fs::create_dir(&env.target).unwrap();
    sh(&format!(
        "mount -t tmpfs -o ro,size=1m ff-test-ro {}",
        env.target.display()
    ));
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&env.target);
    expect(
        &env,
        &["backup", "101"],
        PRECONDITION,
        &["target", "Read-only file system"],
    );
    assert_untouched(&b, &env);
}

#[test]
fn snapshot_failing_inside_the_window_thaws_and_reports() {
    if !privileged() {
        return;
    }
    let b = bed();
    // A snapshot_dir on another btrfs passes every check, but the snapshot
    // itself then fails (EXDEV) while the container is frozen.
    let other = LoopBtrfs::new("256M");
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    env.edit(|c| {
        c.set(
            "volume.0.snapshot_dir",
            common::config::path(&other.snapshots()),
        );
    });
    let (code, out, err) = env.run(&["backup", "101", "--json"]);
    assert_eq!(code, FAILURE, "{out}{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = &m["containers"][0];
    assert_eq!(c["result"], "failed");
    assert!(
        c["error"].as_str().unwrap().contains("snapshot failed"),
        "{c}"
    );
    assert!(
        c["freeze_ms"].as_f64().is_some(),
        "the failed window is still reported: {c}"
    );
    assert!(!b.cg.is_frozen(), "left frozen after a failed snapshot");
    assert!(other.snapshot_folder().is_empty() && b.vol.snapshot_folder().is_empty());
    // The run is complete (manifest) and records the failure; verify flags it.
    let (code, vout, _) = env.run(&["verify"]);
    assert_eq!(code, FAILURE);
    assert!(vout.contains("backup failed"), "{vout}");
    let run_dir = env.target.join(m["run"].as_str().unwrap());
    let names: Vec<String> = std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["manifest.json".to_string()],
        "only the manifest, no half-written archive"
    );
}

#[test]
fn dry_run_plans_without_touching_anything() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    let (code, out, err) = env.run(&["backup", "--all", "--dry-run", "--strategy", "each"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("window 1: sync; freeze 101; snapshot; thaw"),
        "{out}"
    );
    assert!(
        out.contains("101.tar.zst") && out.contains("nothing was frozen or written"),
        "{out}"
    );
    assert_untouched(&b, &env);
    assert!(
        !env.target.exists(),
        "a dry run does not even create the target"
    );
}

#[test]
fn show_config_prints_effective_defaults() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    let (code, out, err) = env.run(&["show-config"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "compress = \"zstd\"",
        "strategy = \"group\"",
        "freeze_timeout = \"5s\"",
        "snapshot_dir",
        "id = \"101\"",
        "private = ",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
    // What it prints is itself a valid config.
    std::fs::write(&env.config, &out).unwrap();
    let (code, again, err) = env.run(&["show-config"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, out);
}

#[test]
fn absurd_counts_and_files_in_place_of_folders_are_refused_even_in_a_dry_run() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    for args in [
        &["backup", "--all", "--jobs", "1000000"][..],
        &["backup", "--all", "--jobs", "1000000", "--dry-run"],
    ] {
        expect(
            &env,
            args,
            USAGE,
            &["--jobs 1000000 is out of range", "1 to 256"],
        );
    }
    // More workers than containers or cores are never started.
    let (code, out, err) = env.run(&["backup", "--all", "--jobs", "200", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" 1 job(s)"), "{out}");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let with = |extra: &str| {
        std::fs::write(&env.config, &text).unwrap();
        env.edit(|c| {
            c.merge(&format!("[backup]\n{extra}"));
        });
    };
    with("jobs = 1000000");
    expect(
        &env,
        &["backup", "--all", "--dry-run"],
        USAGE,
        &["backup.jobs = 1000000"],
    );
    std::fs::write(&env.config, &text).unwrap();
    env.edit(|c| {
        c.set("hooks.timeout", "0s");
    });
    expect(
        &env,
        &["backup", "--all", "--dry-run"],
        USAGE,
        &["hooks.timeout"],
    );
    std::fs::write(&env.config, &text).unwrap();
    // A file where the target or the state dir should be: the dry run says
    // what the real run would.
    std::fs::write(&env.target, "not a folder").unwrap();
    for args in [&["backup", "--all", "--dry-run"][..], &["backup", "--all"]] {
        expect(
            &env,
            args,
            PRECONDITION,
            &["target", "is a file, not a folder"],
        );
    }
    std::fs::remove_file(&env.target).unwrap();
    let _ = std::fs::remove_dir_all(env.state());
    std::fs::write(env.state(), "not a folder").unwrap();
    expect(
        &env,
        &["backup", "--all", "--dry-run"],
        PRECONDITION,
        &["state_dir", "is a file, not a folder"],
    );
    std::fs::remove_file(env.state()).unwrap();
    assert!(!b.cg.is_frozen());
    assert!(b.vol.snapshot_folder().is_empty());
}

#[test]
fn an_empty_config_variable_counts_as_unset() {
    if !privileged() {
        return;
    }
    let b = bed();
    let env = Env::new(&b.vol.volume(), &[ct(&b)], "");
    let out = env
        .cmd()
        .env("FREEZEFRAME_CONFIG", "")
        .args(["--config", env.config.to_str().unwrap(), "show-config"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd()
        .env("FREEZEFRAME_CONFIG", "")
        .arg("show-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{err}");
    assert!(
        err.contains("/etc/freezeframe/freezeframe.toml"),
        "the default: {err}"
    );
}
