//! The guarantees under failure: at every fault point (SIGKILL), on SIGTERM
//! and SIGINT mid-archive, and when a freeze overruns its deadline, no
//! container stays frozen, no snapshot, temp file, incomplete run or lock is
//! left after `recover`, and earlier runs still verify. Also the host lock
//! and the hooks.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    guardians, kill9, privileged, require, which, workloads, CgVersion, Ct, Env, LoopBtrfs,
    TestCgroup,
};
use freezeframe::Journal;

/// Fields drop in order: processes first, the volume last.
struct Bed {
    cgs: Vec<TestCgroup>,
    env: Env,
    vol: LoopBtrfs,
}

/// Three busy containers (heartbeat writers inside their private areas).
fn bed(extra: &str, freeze_timeout: &str) -> Bed {
    let vol = LoopBtrfs::new("1G");
    let hb = workloads().join("heartbeat.py");
    let mut cgs = Vec::new();
    let mut cts = Vec::new();
    for id in ["a", "b", "c"] {
        let mut cg = TestCgroup::new(CgVersion::V2);
        let private = vol.volume().join(id);
        std::fs::create_dir(&private).unwrap();
        std::fs::write(private.join("data"), id.repeat(200_000)).unwrap();
        cg.spawn(&[
            "python3",
            hb.to_str().unwrap(),
            private.join("beats").to_str().unwrap(),
        ]);
        cts.push(Ct::new(id, &cg, &private));
        cgs.push(cg);
    }
    let env = Env::new(&vol.volume(), &cts, extra);
    env.edit(|c| {
        c.set("backup.freeze_timeout", freeze_timeout);
    });
    Bed { cgs, env, vol }
}

fn spawn(env: &Env, args: &[&str], fault: Option<&str>) -> Child {
    env.spawn(args, fault)
}

fn frozen(b: &Bed) -> Vec<String> {
    b.cgs
        .iter()
        .filter(|c| c.is_frozen())
        .map(|c| c.rel.clone())
        .collect()
}

/// Polls until no container is frozen; returns how long that took.
fn wait_all_thawed(b: &Bed, limit: Duration) -> Duration {
    let t = Instant::now();
    while !frozen(b).is_empty() {
        assert!(
            t.elapsed() < limit,
            "still frozen after {limit:?}: {:?}",
            frozen(b)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

/// Run folders without a manifest, and temp files anywhere in the target.
fn half_written(env: &Env) -> Vec<String> {
    let mut bad = Vec::new();
    for run in env.target_entries() {
        let p = env.target.join(&run);
        if run.starts_with(".ff-tmp-") {
            bad.push(run.clone());
        }
        if p.is_dir() {
            if !p.join("manifest.json").exists() {
                bad.push(format!("{run} (no manifest)"));
            }
            for f in std::fs::read_dir(&p).unwrap() {
                let n = f.unwrap().file_name().to_string_lossy().into_owned();
                if n.starts_with(".ff-tmp-") {
                    bad.push(format!("{run}/{n}"));
                }
            }
        }
    }
    bad
}

fn pending(env: &Env) -> usize {
    Journal::pending(&env.state().join("journal"))
        .unwrap()
        .0
        .len()
}

fn wait_for_temp_file(env: &Env, child: &mut Child) {
    let t = Instant::now();
    loop {
        let found = env.target_entries().iter().any(|r| {
            std::fs::read_dir(env.target.join(r))
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(".ff-tmp-"))
                })
                .unwrap_or(false)
        });
        if found {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("backup ended ({st}) before archiving started");
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "archiving never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the guardian of a killed run has removed its snapshots and
/// its incomplete run folder and journaled every step undone — with no
/// `recover` run.
fn wait_for_guardian_cleanup(b: &Bed, what: &str) {
    let t = Instant::now();
    loop {
        let (snaps, half, left) = (
            b.vol.snapshot_folder(),
            half_written(&b.env),
            pending(&b.env),
        );
        if snaps.is_empty() && half.is_empty() && left == 0 && frozen(b).is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what}: the guardian left snapshots {snaps:?}, half-written {half:?}, \
             {left} pending journal steps"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_clean_after_recover(b: &Bed, what: &str) {
    let (code, out, err) = b.env.run(&["recover"]);
    assert_eq!(code, 0, "{what}: recover failed: {out}{err}");
    assert!(frozen(b).is_empty(), "{what}: frozen after recover");
    assert!(
        b.vol.snapshot_folder().is_empty(),
        "{what}: snapshots leaked: {:?}",
        b.vol.snapshot_folder()
    );
    assert!(
        half_written(&b.env).is_empty(),
        "{what}: half-written: {:?}",
        half_written(&b.env)
    );
    assert_eq!(
        pending(&b.env),
        0,
        "{what}: journal still has pending steps"
    );
    // Every run that was good still verifies (failed runs are reported as
    // such by verify, which is the point).
    let (_, list, _) = b.env.run(&["list", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let good: Vec<&str> = runs
        .iter()
        .filter(|r| r["result"] == "ok")
        .map(|r| r["run"].as_str().unwrap())
        .collect();
    if !good.is_empty() {
        let mut args = vec!["verify"];
        args.extend(&good);
        let (code, out, err) = b.env.run(&args);
        assert_eq!(code, 0, "{what}: earlier runs no longer verify: {out}{err}");
    }
    let (_, list, _) = b.env.run(&["list"]);
    assert!(!list.contains("INCOMPLETE"), "{what}: {list}");
}

#[test]
fn every_fault_point_leaves_nothing_frozen_or_leaked() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let b = bed("", "2s");
    b.env.backup_json(&["--all"]);
    let points = [
        "after-lock",
        "after-journal-freeze",
        "after-freeze",
        "after-snapshot",
        "after-thaw",
        "mid-archive",
        "before-manifest",
    ];
    let mut table = vec!["| fault point | exit | thawed after (ms) | frozen after recover | snapshots after recover | earlier runs verify |".to_string()];
    table.push("|---|---|---:|---:|---:|---|".into());
    for point in points {
        for strategy in ["group", "each"] {
            let start = Instant::now();
            let out = spawn(
                &b.env,
                &["backup", "--all", "--strategy", strategy],
                Some(point),
            )
            .wait_with_output()
            .unwrap();
            assert_eq!(
                out.status.signal(),
                Some(9),
                "{point}: expected SIGKILL, got {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            // Within freeze_timeout + 2 s, nothing is frozen.
            wait_all_thawed(
                &b,
                Duration::from_secs(4)
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(100)),
            );
            let thawed_ms = start.elapsed().as_millis();
            // The guardian cleans up on its own, before any `recover`.
            wait_for_guardian_cleanup(&b, &format!("{point}/{strategy}"));
            assert_clean_after_recover(&b, &format!("{point}/{strategy}"));
            if strategy == "group" {
                table.push(format!("| {point} | SIGKILL | {thawed_ms} | 0 | 0 | yes |"));
            }
        }
    }
    // A restore killed after its first entry: the lock is free again and
    // nothing was written outside its target.
    let to = b.env.dir.path().join("restore-killed");
    let out = spawn(
        &b.env,
        &["restore", "a", "--to", to.to_str().unwrap()],
        Some("mid-restore"),
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    assert_clean_after_recover(&b, "mid-restore");
    table.push("| mid-restore | SIGKILL | - | 0 | 0 | yes |".into());
    eprintln!("{}", table.join("\n"));
}

#[test]
fn sigterm_and_sigint_mid_archive_undo_everything() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let b = bed("", "5s");
    b.env.backup_json(&["--all"]);
    for (sig, name, code) in [
        (rustix::process::Signal::TERM, "SIGTERM", 143),
        (rustix::process::Signal::INT, "SIGINT", 130),
    ] {
        let mut child = spawn(&b.env, &["backup", "--all"], Some("mid-archive:hang=60s"));
        wait_for_temp_file(&b.env, &mut child);
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let t = Instant::now();
        rustix::process::kill_process(pid, sig).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name}: took {:?} to stop",
            t.elapsed()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains("interrupted by signal"), "{name}: {err}");
        // Everything was undone by the process itself, before recover.
        assert!(frozen(&b).is_empty(), "{name}");
        assert!(
            b.vol.snapshot_folder().is_empty(),
            "{name}: {:?}",
            b.vol.snapshot_folder()
        );
        assert!(
            half_written(&b.env).is_empty(),
            "{name}: {:?}",
            half_written(&b.env)
        );
        assert_eq!(pending(&b.env), 0, "{name}");
        assert_clean_after_recover(&b, name);
    }
}

#[test]
fn an_overrunning_freeze_is_thawed_by_the_guardian_at_the_deadline() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let b = bed("", "1s");
    let start = Instant::now();
    let child = spawn(
        &b.env,
        &["backup", "--all", "--json"],
        Some("after-freeze:hang=6s"),
    );
    // The containers get frozen, then the guardian thaws them at the deadline
    // while the backup process is still stuck.
    let t = Instant::now();
    while frozen(&b).len() < 3 {
        assert!(t.elapsed() < Duration::from_secs(5), "never frozen");
        std::thread::sleep(Duration::from_millis(5));
    }
    let thawed_after =
        wait_all_thawed(&b, Duration::from_secs(3)) + t.elapsed().saturating_sub(t.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "thawed only after {:?}",
        start.elapsed()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("guardian") && stderr.contains("deadline"),
        "the guardian logs what it did: {stderr}"
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in m["containers"].as_array().unwrap() {
        assert_eq!(c["result"], "failed");
        let e = c["error"].as_str().unwrap();
        assert!(e.contains("freeze_timeout deadline of 1s"), "{e}");
    }
    assert!(b.vol.snapshot_folder().is_empty());
    assert!(thawed_after < Duration::from_secs(3));
    assert_clean_after_recover(&b, "overrun");
}

#[test]
fn one_run_per_host_and_a_dead_holder_is_taken_over() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let b = bed("", "5s");
    let mut first = spawn(&b.env, &["backup", "--all"], Some("mid-archive:hang=3s"));
    wait_for_temp_file(&b.env, &mut first);
    let (code, _, err) = b.env.run(&["backup", "--all"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(&format!("PID {}", first.id())) && err.contains("--lock-wait"),
        "{err}"
    );
    let waiting = spawn(&b.env, &["backup", "--all", "--lock-wait", "30s"], None);
    assert!(first.wait().unwrap().success());
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A run killed while holding the lock: the next one takes it over, loudly.
    let out = spawn(&b.env, &["backup", "--all"], Some("after-lock"))
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    let (code, _, err) = b.env.run(&["backup", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("took over the host lock") && err.contains("no longer running"),
        "{err}"
    );
    assert_clean_after_recover(&b, "lock");
}

fn hook_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn pos(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in {lines:#?}"))
}

#[test]
fn hooks_run_in_order_with_their_environment() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let flag = dir.path().join("fail-pre-freeze-of");
    let rec = format!(
        "echo \\\"$FF_PHASE ${{FF_CONTAINER:--}} ${{FF_RESULT:--}} $FF_RUN\\\" >> {}",
        log.display()
    );
    let hooks = format!(
        "\n[hooks]\ntimeout = \"1s\"\n{}\npre-freeze = \"{rec}; if [ \\\"$(cat {} 2>/dev/null)\\\" = \\\"$FF_CONTAINER\\\" ]; then exit 7; fi; if [ \\\"$(cat {} 2>/dev/null)\\\" = \\\"hang-$FF_CONTAINER\\\" ]; then sleep 30; fi\"\n",
        ["job-start", "backup-start", "post-thaw", "backup-end", "backup-failed", "job-end", "job-failed", "finally"]
            .iter()
            .map(|p| format!("{p} = \"{rec}\""))
            .collect::<Vec<_>>()
            .join("\n"),
        flag.display(),
        flag.display()
    );
    let b = bed(&hooks, "5s");

    // 1. Everything succeeds: order and environment.
    let m = b.env.backup_json(&["a", "b"]);
    let run = m["run"].as_str().unwrap();
    let l = hook_lines(&log);
    assert!(
        l.iter().all(|x| x.ends_with(run)),
        "FF_RUN on every hook: {l:#?}"
    );
    assert_eq!(pos(&l, "job-start"), 0);
    for ct in ["a", "b"] {
        assert!(pos(&l, &format!("backup-start {ct}")) < pos(&l, &format!("pre-freeze {ct}")));
        assert!(
            pos(&l, &format!("pre-freeze {ct}"))
                < pos(&l, "post-thaw a").min(pos(&l, "post-thaw b")),
            "every pre-freeze before any thaw"
        );
        assert!(pos(&l, &format!("post-thaw {ct}")) < pos(&l, &format!("backup-end {ct}")));
        assert!(pos(&l, &format!("backup-end {ct}")) < pos(&l, "job-end"));
    }
    assert!(pos(&l, "job-end - ok") < pos(&l, "finally - ok"));
    assert_eq!(l.last().unwrap(), &format!("finally - ok {run}"));

    // 2. A failing pre-freeze hook: that container is never frozen, the
    //    other is backed up, finally still runs.
    std::fs::write(&log, "").unwrap();
    std::fs::write(&flag, "b").unwrap();
    let (code, out, _) = b.env.run(&["backup", "a", "b", "--json"]);
    assert_eq!(code, 3, "partial");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cb = &m["containers"][1];
    assert_eq!(cb["result"], "failed");
    assert!(
        cb["error"].as_str().unwrap().contains("pre-freeze hook"),
        "{cb}"
    );
    assert!(cb["window"].is_null(), "b was never frozen: {cb}");
    assert_eq!(m["containers"][0]["result"], "ok");
    let l = hook_lines(&log);
    pos(&l, "backup-failed b failed");
    assert!(pos(&l, "job-failed - partial") < pos(&l, "finally - partial"));
    assert!(frozen(&b).is_empty());

    // 3. A hanging pre-freeze hook is killed after the hook timeout.
    std::fs::write(&flag, "hang-a").unwrap();
    let t = Instant::now();
    let (code, out, _) = b.env.run(&["backup", "a", "--json"]);
    assert!(t.elapsed() < Duration::from_secs(15));
    assert_eq!(code, 1);
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        m["containers"][0]["error"]
            .as_str()
            .unwrap()
            .contains("hook timeout"),
        "{m}"
    );
    assert!(frozen(&b).is_empty());
    assert!(hook_lines(&log)
        .last()
        .unwrap()
        .starts_with("finally - failed"));
    assert_clean_after_recover(&b, "hooks");
}

#[test]
fn recover_alone_undoes_a_run_whose_guardian_died_too() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    // Power-loss-like: the backup and its guardian both die while the
    // containers are frozen and the snapshot exists. Only the journal is left.
    let b = bed("", "30s");
    let mut child = spawn(
        &b.env,
        &["backup", "--all"],
        Some("after-snapshot:hang=60s"),
    );
    let t = Instant::now();
    while b.vol.snapshot_names().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(20), "no snapshot");
        assert!(child.try_wait().unwrap().is_none(), "backup ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    let guardians = guardians(child.id());
    assert_eq!(guardians.len(), 1, "one guardian: {guardians:?}");
    kill9(guardians[0]);
    kill9(child.id());
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        frozen(&b).len(),
        3,
        "with no guardian left, the containers stay frozen until recover"
    );
    assert!(pending(&b.env) > 0);
    let (code, out, err) = b.env.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("thawed container a") && err.contains("removed snapshot"),
        "{err}"
    );
    assert_clean_after_recover(&b, "power loss");
    // Idempotent.
    let (code, out, _) = b.env.run(&["recover"]);
    assert_eq!((code, out.trim()), (0, "nothing to recover"));
}

#[test]
fn the_guardian_still_thaws_when_stderr_is_gone() {
    if !privileged() || !require("python3", which("python3")) {
        return;
    }
    // A backup whose stderr pipe nobody reads any more (a dropped ssh
    // session, say): neither it nor its guardian may die of writing there.
    let b = bed("", "2s");
    let mut child = b
        .env
        .command()
        .args(["backup", "--all"])
        .env("FREEZEFRAME_FAULT", "after-freeze")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "killed at the fault point, not by a panic: {status}"
    );
    wait_all_thawed(&b, Duration::from_secs(4));
    assert_clean_after_recover(&b, "stderr gone");
}

/// A guardian started by hand for this test process, with a journaled
/// freeze of `cg` to undo. It is given no config at all.
fn guardian_for(cg: &TestCgroup, state: &Path) -> Child {
    let journal = Journal::open(state, "guardian-test").unwrap();
    journal
        .intents(&[freezeframe::Step::Freeze {
            container: "t".into(),
            runtime: freezeframe::RuntimeKind::Cgroup,
            handle: format!("v2:{}", cg.dir.display()),
        }])
        .unwrap();
    common::freezeframe(None)
        .args(["guardian", "--parent", &std::process::id().to_string()])
        .arg("--state-dir")
        .arg(state)
        .args([
            "--openvz-conf-dir",
            "/nonexistent",
            "--lxcpath",
            "/nonexistent",
        ])
        // No config anywhere: the guardian must not need one.
        .env("FREEZEFRAME_CONFIG", state.join("no-such-config.toml"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn freeze(cg: &TestCgroup) {
    std::fs::write(cg.dir.join("cgroup.freeze"), "1").unwrap();
    let t = Instant::now();
    while !cg.is_frozen() {
        assert!(t.elapsed() < Duration::from_secs(5), "never frozen");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_thawed(cg: &TestCgroup, limit: Duration) {
    let t = Instant::now();
    while cg.is_frozen() {
        assert!(t.elapsed() < limit, "still frozen after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn unix_ms(d: Duration, later: bool) -> u128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    if later { now + d } else { now - d }.as_millis()
}

#[test]
fn the_guardian_reads_typed_messages_and_thaws_on_one_it_cannot_read() {
    use std::io::Write;
    if !privileged() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "600"]);

    // A deadline far ahead: the guardian waits.
    freeze(&cg);
    let mut g = guardian_for(&cg, state.path());
    let mut pipe = g.stdin.take().unwrap();
    let open = |ms: u128| format!("{{\"msg\":\"open\",\"deadline_unix_ms\":{ms}}}\n");
    pipe.write_all(open(unix_ms(Duration::from_secs(60), true)).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(cg.is_frozen(), "thawed before the deadline");

    // The old text protocol (or any garbage) is not read as a default
    // deadline: the guardian cannot watch what it cannot read, so it thaws.
    pipe.write_all(b"open 10000\n").unwrap();
    wait_thawed(&cg, Duration::from_secs(5));

    // An absolute deadline already past on arrival: thawed at once.
    freeze(&cg);
    Journal::open(state.path(), "guardian-test-2")
        .unwrap()
        .intents(&[freezeframe::Step::Freeze {
            container: "t".into(),
            runtime: freezeframe::RuntimeKind::Cgroup,
            handle: format!("v2:{}", cg.dir.display()),
        }])
        .unwrap();
    pipe.write_all(open(unix_ms(Duration::from_secs(1), false)).as_bytes())
        .unwrap();
    wait_thawed(&cg, Duration::from_secs(5));

    pipe.write_all(b"{\"msg\":\"done\"}\n").unwrap();
    drop(pipe);
    let out = g.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("unreadable message `open 10000`"),
        "the guardian says what it could not read: {stderr}"
    );
    assert!(stderr.contains("deadline passed"), "{stderr}");
    let left = Journal::pending(&state.path().join("journal")).unwrap().0;
    assert!(left.is_empty(), "both freezes marked undone: {left:?}");
}
