use std::path::Path;

use super::target::DEFAULT_COMPRESSION;
use super::*;

const GOOD: &str = r#"
[target]
path = "/var/backups/ff"

[backup]
compress = "bzip2"
level = 9
freeze_timeout = "5s"

[[volume]]
name = "data"
path = "/srv/ct"
provider = "btrfs"

[[container]]
id = "101"
cgroup = "ff/101"
private = "/srv/ct/101"
config = "/etc/ff/101.conf"
"#;

fn err(text: &str) -> String {
    parse(text, Path::new("/etc/ff.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn good_config_fills_defaults() {
    let c = parse(GOOD, Path::new("x")).unwrap();
    assert_eq!(c.backup.compress, Compression::Bzip2);
    assert_eq!(c.backup.mode, Mode::Snapshot);
    assert_eq!(c.backup.strategy, Strategy::Group);
    assert_eq!(c.freeze_timeout(), std::time::Duration::from_secs(5));
    assert_eq!(
        c.containers[0].private.as_deref(),
        Some(Path::new("/srv/ct/101"))
    );
    assert_eq!(
        c.volume_for(Path::new("/srv/ct/101"), None).unwrap().name,
        "data"
    );
    assert_eq!(
        c.volumes[0].snapshot_dir,
        Path::new("/srv/.freezeframe-snapshots")
    );
    assert_eq!(c.state_dir, Path::new("/var/lib/freezeframe"));
}

#[test]
fn unknown_key_names_key_line_and_allowed() {
    let e = err(&GOOD.replace("level = 9", "level = 9\nlevle = 3"));
    assert!(e.contains("levle"), "{e}");
    assert!(e.contains("line 8"), "{e}");
    assert!(e.contains("expected one of"), "{e}");
}

#[test]
fn bad_enum_value_lists_allowed() {
    let e = err(&GOOD.replace("\"bzip2\"", "\"xz\""));
    assert!(
        e.contains("xz") && e.contains("zstd") && e.contains("gzip"),
        "{e}"
    );
}

#[test]
fn level_out_of_range_names_line() {
    let e = err(&GOOD.replace("level = 9", "level = 12"));
    assert!(e.contains("line 7") && e.contains("1..=9"), "{e}");
}

#[test]
fn private_outside_volumes_is_rejected() {
    let e = err(&GOOD.replace("/srv/ct/101", "/elsewhere/101"));
    assert!(e.contains("not inside any [[volume]]"), "{e}");
    assert!(e.contains("line 15"), "{e}");
}

#[test]
fn hostile_ids_and_cgroups_are_rejected() {
    assert!(
        err(&GOOD.replace("id = \"101\"", "id = \"../x\"")).contains("not a valid container id")
    );
    assert!(err(&GOOD.replace("ff/101", "../101")).contains("relative to the cgroup root"));
    assert!(
        err(&GOOD.replace("ff/101", "/sys/fs/cgroup/x")).contains("relative to the cgroup root")
    );
}

#[test]
fn duplicate_ids_are_rejected() {
    let twice =
        format!("{GOOD}\n[[container]]\nid = \"101\"\ncgroup = \"a\"\nprivate = \"/srv/ct/a\"\n");
    assert!(err(&twice).contains("used twice"));
}

#[test]
fn bad_duration_is_explained() {
    let e = err(&GOOD.replace("\"5s\"", "\"5w\""));
    assert!(e.contains("unknown unit"), "{e}");
}

#[test]
fn container_id_rules() {
    for ok in ["101", "web-1", "a.b_c"] {
        assert!(ContainerId::new(ok).is_ok(), "{ok}");
    }
    for bad in ["", ".hidden", "-x", "a/b", "a b", &"x".repeat(65)] {
        assert!(ContainerId::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn hooks_table_accepts_phases_and_rejects_typos() {
    let c = parse(
        &format!(
            "{GOOD}\n[hooks]\ntimeout = \"5s\"\npre-freeze = \"echo hi\"\nfinally = \"true\"\n"
        ),
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(c.hooks.commands.len(), 2);
    assert_eq!(c.hooks.timeout.0, std::time::Duration::from_secs(5));
    let e = err(&format!("{GOOD}\n[hooks]\npre_freeze = \"x\"\n"));
    assert!(e.contains("pre_freeze") && e.contains("pre-freeze"), "{e}");
}

#[test]
fn lvm_volume_options() {
    let lvm = GOOD.replace(
        "provider = \"btrfs\"",
        "provider = \"lvm\"\nsnapshot_size = \"512M\"\nautoextend_percent = 70",
    );
    let c = parse(&lvm, Path::new("x")).unwrap();
    let o = c.volumes[0].lvm.as_ref().unwrap();
    assert_eq!(o.snapshot_size, SnapshotSize::Bytes(512 << 20));
    assert_eq!(o.autoextend_percent, Some(70.0));
    assert_eq!(o.warn_percent, 80.0);
    let e = err(&GOOD.replace(
        "provider = \"btrfs\"",
        "provider = \"btrfs\"\nsnapshot_size = \"1G\"",
    ));
    assert!(e.contains("applies only to provider"), "{e}");
    let e = err(&GOOD.replace(
        "provider = \"btrfs\"",
        "provider = \"lvm-thin\"\nsnapshot_size = \"1G\"",
    ));
    assert!(e.contains("thin snapshots have no size"), "{e}");
    let e = err(&GOOD.replace(
        "provider = \"btrfs\"",
        "provider = \"lvm\"\nsnapshot_size = \"lots\"",
    ));
    assert!(e.contains("`20%`"), "{e}");
    assert_eq!("20%".parse::<SnapshotSize>().unwrap().bytes_for(1000), 200);
    assert_eq!(
        "2G".parse::<SnapshotSize>().unwrap().bytes_for(1 << 30),
        1 << 30,
        "capped at the origin"
    );
}

fn with_target(lines: &str) -> String {
    GOOD.replace(
        "[target]\npath = \"/var/backups/ff\"\n",
        &format!("[target]\npath = \"/var/backups/ff\"\n{lines}\n"),
    )
}

#[test]
fn repository_target_local_and_s3() {
    let c = parse(
        &with_target(
            "kind = \"repository\"\nrepository = \"/srv/repo\"\npassword_file = \"/etc/ff/pw\"",
        ),
        Path::new("x"),
    )
    .unwrap();
    let r = c.target.repository().cloned().unwrap();
    assert_eq!(
        r.location,
        crate::config::Location::Local {
            path: "/srv/repo".into()
        }
    );
    assert_eq!(r.cache_dir, Path::new("/var/lib/freezeframe/repo-cache"));
    assert_eq!(r.compression, DEFAULT_COMPRESSION);
    // Older configs' `max_parts` still load (it has no effect).
    parse(
        &with_target(
            "kind = \"repository\"\nrepository = \"/srv/repo\"\npassword_env = \"PW\"\nmax_parts = 1",
        ),
        Path::new("x"),
    )
    .unwrap();

    let c = parse(
        &with_target(
            "kind = \"repository\"\nrepository = \"opendal:s3\"\npassword_env = \"PW\"\n[target.s3]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:8333\"\nsecret_access_key = \"hush\"",
        ),
        Path::new("x"),
    )
    .unwrap();
    let r = c.target.repository().unwrap();
    match &r.location {
        crate::config::Location::S3(s) => {
            assert_eq!((s.region.as_str(), s.root.as_str()), ("us-east-1", "/"));
        }
        other => panic!("{other:?}"),
    }
    // show-config never prints the secret.
    let shown = toml::to_string(&c).unwrap();
    assert!(!shown.contains("hush"), "{shown}");
}

#[test]
fn repository_target_mistakes_say_what_to_do() {
    let base = "kind = \"repository\"\nrepository = \"/srv/repo\"";
    for (lines, want) in [
        (
            "kind = \"repository\"\npassword_env = \"PW\"",
            "target.repository is required",
        ),
        (base, "needs a password"),
        (
            &format!("{base}\npassword_env = \"PW\"\npassword_command = \"pass x\"")[..],
            "only one of",
        ),
        (
            "kind = \"repository\"\nrepository = \"opendal:gcs\"\npassword_env = \"PW\"",
            "not supported",
        ),
        (
            "kind = \"repository\"\nrepository = \"opendal:s3\"\npassword_env = \"PW\"",
            "needs a [target.s3] table",
        ),
        (
            "kind = \"repository\"\nrepository = \"repo\"\npassword_env = \"PW\"",
            "absolute path",
        ),
        (
            "repository = \"/srv/repo\"",
            "apply only to kind = \"repository\"",
        ),
        ("kind = \"zip\"", "allowed `tar`, `repository`"),
        (
            &format!("{base}\npassword_env = \"PW\"\ncompression = 30")[..],
            "target.compression = 30",
        ),
        ("max_parts = 2", "apply only to kind = \"repository\""),
        (
            "chunk_size = \"64K\"",
            "apply only to kind = \"repository\"",
        ),
        (
            &format!("{base}\npassword_env = \"PW\"\nchunk_size = \"96K\"")[..],
            "target.chunk_size = \"96K\": allowed are \"64K\"",
        ),
        (
            &format!("{base}\npassword_env = \"PW\"\nchunk_size = \"2M\"")[..],
            "target.chunk_size = \"2M\"",
        ),
        (
            &format!("{base}\npassword_env = \"PW\"\nchunk_size = 4096")[..],
            "target.chunk_size = 4096",
        ),
        (
            &format!("{base}\npassword_env = \"PW\"\nchunk_size = \"big\"")[..],
            "target.chunk_size = \"big\"",
        ),
    ] {
        let e = err(&with_target(lines));
        assert!(e.contains(want), "{lines}: {e}");
    }
}

#[test]
fn counts_and_durations_are_bounded_with_the_allowed_range() {
    let e = err(&GOOD.replace("level = 9", "level = 9\njobs = 1000000"));
    assert!(
        e.contains("line 8")
            && e.contains("jobs = 1000000")
            && e.contains("0 (half the cores) to 256"),
        "{e}"
    );
    let c = parse(
        &GOOD.replace("level = 9", "level = 9\njobs = 256"),
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(c.backup.jobs, 256);
    let e = err(&format!("{GOOD}\n[hooks]\ntimeout = \"0s\"\n"));
    assert!(
        e.contains("hooks.timeout = \"0s\" is out of range: allowed 1s to 24h"),
        "{e}"
    );
    for bad in ["\"5ms\"", "\"2h\""] {
        let e = err(&GOOD.replace("\"5s\"", bad));
        assert!(
            e.contains("line 8") && e.contains("allowed 10ms to 1h"),
            "{bad}: {e}"
        );
    }
    let e = err(&GOOD.replace("\"5s\"", &format!("\"{}m\"", u64::MAX)));
    assert!(e.contains("too long a duration"), "{e}");
}

#[test]
fn a_relative_state_dir_is_rejected_with_its_line() {
    let e = err(&format!("state_dir = \"state\"\n{GOOD}"));
    assert!(
        e.contains("line 1") && e.contains("state_dir `state` must be an absolute path"),
        "{e}"
    );
    let e = err(&format!("state_dir = \"/var/lib/../tmp\"\n{GOOD}"));
    assert!(e.contains("must not contain `..`"), "{e}");
    let long = format!("/{}", "d/".repeat(300));
    let e = err(&format!("state_dir = \"{long}\"\n{GOOD}"));
    assert!(
        e.contains("line 1") && e.contains("601 bytes long; at most 500"),
        "{e}"
    );
}

#[test]
fn a_huge_value_is_not_echoed_whole() {
    let long = "x".repeat(5_000_000);
    for text in [
        GOOD.replace("id = \"101\"", &format!("id = \"{long}\"")),
        GOOD.replace("compress = \"bzip2\"", &format!("compress = \"{long}\"")),
        format!("{GOOD}\nbogus = \"{long}\"\n"),
    ] {
        let e = err(&text);
        assert!(e.len() < 2_000, "{} bytes: {}", e.len(), &e[..300]);
        assert!(e.contains("more bytes"), "{e}");
    }
}

#[test]
fn show_config_output_loads_back_to_the_same_config() {
    let text = format!(
        "{GOOD}\n{}",
        r#"
[metrics]
textfile = "/var/lib/node/ff.prom"
[notify]
timeout = "3s"
retries = 1
[[notify.webhook]]
url = "https://example.net/h"
failure_url = "https://hc.example.net/x/fail"
on = "failure"
[notify.mail]
to = ["root", "ops@example.net"]
[throttle]
io_weight = 50
io_read_max = "100M"
io_write_max = "50M"
nice = 10
bwlimit = "40M"
"#
    );
    let mut c = parse(&text, Path::new("x")).unwrap();
    c.containers[0].exclude = vec!["var/cache/**".into(), "*.swp".into()];
    let again = parse(&to_toml(&c).unwrap(), Path::new("y")).unwrap();
    assert_eq!(again, c);
    assert_eq!(c.throttle.bwlimit, Some(40 << 20));
    assert!(err(&format!("{GOOD}\n[throttle]\nbwlimit = 0\n")).contains("leave it out"));
}

#[test]
fn chunk_size_defaults_to_restics_and_reads_back_from_show_config() {
    use crate::config::target::TargetConfig;
    let base = "kind = \"repository\"\nrepository = \"/srv/repo\"\npassword_env = \"PW\"";
    let size = |lines: &str| match parse(&with_target(lines), Path::new("x")).unwrap().target {
        TargetConfig::Repository { repository, .. } => repository.chunk_size,
        TargetConfig::Tar { .. } => unreachable!(),
    };
    assert_eq!(size(base), 1 << 20);
    assert_eq!(size(&format!("{base}\nchunk_size = \"64K\"")), 64 << 10);
    // `show-config` prints bytes, which load again.
    assert_eq!(size(&format!("{base}\nchunk_size = 131072")), 128 << 10);
}
