//! Restore drills (issue 16, first part): a good backup passes in both
//! targets (the every-file-type tree); a check command that fails, or an
//! archive damaged after the fact, fails the drill with exit 1, and
//! `status` and the metrics say so; the scratch folder is always removed.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{local_repo_env, privileged, Ct, Env};
use serde_json::Value;

fn flip_byte_in_the_middle(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0xff;
    std::fs::write(p, b).unwrap();
}

fn status_of(env: &Env) -> (i32, Value) {
    let (code, out, err) = env.run(&["status", "--json"]);
    assert!(!out.is_empty(), "{err}");
    (code, serde_json::from_str(&out).unwrap())
}

fn largest_file(dir: &Path) -> std::path::PathBuf {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if best.as_ref().is_none_or(|(s, _)| m.len() > *s) {
                best = Some((m.len(), e.path()));
            }
        }
    }
    best.unwrap().1
}

#[test]
fn drills_pass_for_good_backups_and_fail_loudly_for_bad_ones() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    common::every_file_type(&private);
    std::fs::write(private.join("big"), vec![9u8; 3 << 20]).unwrap();
    let ct = || Ct::new("101", &cg, &private);
    for (kind, env, store) in [
        ("tar", Env::new(&vol.volume(), &[ct()], ""), "backups"),
        ("repository", local_repo_env(&vol.volume(), &[ct()]), "repo"),
    ] {
        let prom = env.dir.path().join("ff.prom");
        env.edit(|c| {
            c.set("metrics.textfile", common::config::path(&prom));
            c.set("container.0.drill_check", "test -s big && test -d .");
        });
        env.backup_json(&["--all"]);
        let (code, out, err) = env.run(&["drill"]);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        assert!(out.contains("101: drill passed"), "{kind}: {out}");
        let (code, v) = status_of(&env);
        assert_eq!(code, 0, "{kind}: {v}");
        let (_, text, _) = env.run(&["status"]);
        let row = text.lines().find(|l| l.starts_with("101 ")).unwrap();
        assert!(row.contains(" passed "), "{text}");
        assert_eq!(v["containers"][0]["last_drill"]["ok"], true, "{kind}: {v}");
        let metrics = std::fs::read_to_string(&prom).unwrap();
        assert!(
            metrics.contains("freezeframe_last_drill_result{container=\"101\"} 0"),
            "{metrics}"
        );
        let scratch = env.state().join("drill");
        assert_eq!(
            std::fs::read_dir(&scratch).unwrap().count(),
            0,
            "{kind}: scratch left"
        );

        // The check command fails.
        env.edit(|c| {
            c.set("container.0.drill_check", "test -e no-such-file");
        });
        let (code, out, _) = env.run(&["drill", "101", "--json"]);
        assert_eq!(code, 1, "{kind}: {out}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert!(
            r[0]["error"]
                .as_str()
                .unwrap()
                .starts_with("check command failed"),
            "{r}"
        );
        let (code, v) = status_of(&env);
        assert_eq!(code, 2, "{kind}: {v}");
        assert!(v["containers"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("last restore drill failed: check command failed"));
        let metrics = std::fs::read_to_string(&prom).unwrap();
        assert!(
            metrics.contains("freezeframe_last_drill_result{container=\"101\"} 2"),
            "{metrics}"
        );

        // Damaged after the fact: the restore's checksums catch it.
        env.edit(|c| {
            c.remove("container.0.drill_check");
        });
        flip_byte_in_the_middle(&largest_file(&env.dir.path().join(store)));
        let (code, out, err) = env.run(&["drill"]);
        assert_eq!(code, 1, "{kind}: {out}{err}");
        assert!(
            out.contains("101: drill FAILED: restore failed"),
            "{kind}: {out}"
        );
        assert_eq!(
            std::fs::read_dir(&scratch).unwrap().count(),
            0,
            "{kind}: scratch left"
        );
        assert_eq!(status_of(&env).0, 2);

        // What a killed drill leaves, `recover` removes: only folders named
        // as a drill's of a process that is gone.
        let dead = scratch.join("drill-999999999-101");
        std::fs::create_dir_all(dead.join("etc")).unwrap();
        std::fs::write(scratch.join("drill-999999999-101.conf"), "x").unwrap();
        let live = scratch.join(format!("drill-{}-101", std::process::id()));
        std::fs::create_dir(&live).unwrap();
        std::fs::create_dir(scratch.join("not-a-drill")).unwrap();
        let (code, o, e) = env.run(&["recover"]);
        assert_eq!(code, 0, "{o}{e}");
        assert!(e.contains("removed what a killed drill left"), "{e}");
        let mut left: Vec<String> = std::fs::read_dir(&scratch)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                format!("drill-{}-101", std::process::id()),
                "not-a-drill".into()
            ]
        );
        std::fs::remove_dir(&live).unwrap();
    }
}
