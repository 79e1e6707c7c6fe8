//! `restore ID --as NEWID` for cgroup containers, for both kinds of target
//! (LXC and OpenVZ copies are in `lxc.rs` and `openvz.rs`): the copy lands
//! where `--to` says with the `[[container]]` entry printed; every refusal
//! writes nothing; SIGKILL at any step leaves nothing that `recover` does
//! not remove. And the owner shift of `--map-ids` on real files.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{local_repo_env, privileged, require, sh, tree, which, Ct, Env};

/// `ct` backed up to a tar and to a repository target; for each, an empty
/// folder to restore into.
fn backed_up(vol: &Path, ct: &Ct) -> Vec<(&'static str, Env, tempfile::TempDir)> {
    let c = || Ct {
        id: ct.id.clone(),
        cgroup: ct.cgroup.clone(),
        private: ct.private.clone(),
        config: ct.config.clone(),
    };
    [
        ("tar", Env::new(vol, &[c()], "")),
        ("repository", local_repo_env(vol, &[c()])),
    ]
    .into_iter()
    .map(|(kind, env)| {
        env.backup_json(&["--all"]);
        let work = tempfile::Builder::new()
            .prefix("ff-as-")
            .tempdir_in("/var/tmp")
            .unwrap();
        (kind, env, work)
    })
    .collect()
}

#[test]
fn a_cgroup_copy_goes_to_to_with_its_entry_printed_and_refusals_write_nothing() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("web");
    common::every_file_type(&private);
    let ct = Ct::new("web", &cg, &private);
    for (kind, env, work) in backed_up(&vol.volume(), &ct) {
        let to = work.path().join("web2");
        let to_s = to.to_str().unwrap();

        // Every refusal: exit 2, a message saying what to do, nothing written.
        let refusals: &[(&[&str], &str)] = &[
            (&["restore", "web", "--as", "web2"], "--to"),
            (&["restore", "web", "--as", "web", "--to", to_s], "itself"),
            (
                &["restore", "web", "--as", "../x", "--to", to_s],
                "not a valid container id",
            ),
            (
                &[
                    "restore",
                    "web",
                    "--as",
                    "web2",
                    "--to",
                    to_s,
                    "--hostname",
                    "a\"\nIP_ADDRESS=\"1.2.3.4",
                ],
                "not a host name",
            ),
            (
                &[
                    "restore",
                    "web",
                    "--as",
                    "web2",
                    "--to",
                    to_s,
                    "--map-ids",
                    "b 0 100000 65536",
                ],
                "unprivileged LXC",
            ),
            (
                &[
                    "restore",
                    "web",
                    "--as",
                    "web2",
                    "--to",
                    to_s,
                    "--map-ids",
                    "u 0 x 1",
                ],
                "not an id range",
            ),
            (
                &[
                    "restore",
                    "web",
                    "--as",
                    "web2",
                    "--to",
                    to_s,
                    "--runtime",
                    "lxc",
                ],
                "configured as a cgroup",
            ),
            (
                &[
                    "restore",
                    "web",
                    "--as",
                    "web2",
                    "--to",
                    work.path().to_str().unwrap(),
                ],
                "exists",
            ),
            (
                &["restore", "web", "--as", "web2", "--to", "/nonexistent/x/y"],
                "parent folder does not exist",
            ),
            (
                &["restore", "nosuch", "--as", "web2", "--to", to_s],
                "not configured",
            ),
        ];
        for (args, says) in refusals {
            let (code, out, err) = env.run(args);
            assert_eq!(code, 2, "{kind} {args:?}: {out}{err}");
            assert!(err.contains(says), "{kind} {args:?}: {err}");
            assert!(
                common::names_in(work.path()).is_empty(),
                "{kind} {args:?}: wrote {:?}",
                common::names_in(work.path())
            );
        }
        // A new id already in the config is refused too.
        env.edit(|c| {
            let mut t = toml::Table::new();
            t.insert("id".into(), "web3".into());
            t.insert("cgroup".into(), "x".into());
            t.insert(
                "private".into(),
                vol.volume().join("web3").to_str().unwrap().into(),
            );
            c.push("container", t);
        });
        let (code, _, err) = env.run(&["restore", "web", "--as", "web3", "--to", to_s]);
        assert_eq!(code, 2, "{kind}: {err}");
        assert!(err.contains("in the config already"), "{kind}: {err}");
        assert!(common::names_in(work.path()).is_empty());

        let (code, out, err) = env.run(&["restore", "web", "--as", "web2", "--to", to_s]);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        let want = tree::describe(&private);
        let got = tree::describe(&to);
        if kind == "repository" {
            // A repository does not record its root folder's metadata.
            tree::assert_same(
                kind,
                &tree::as_repository_restores(want),
                &tree::as_repository_restores(got),
            );
        } else {
            tree::assert_same(kind, &want, &got);
        }
        assert_eq!(
            common::names_in(work.path()),
            ["web2"],
            "{kind}: no staging, config or dump left"
        );
        // The printed entry is what to paste: valid TOML naming the copy.
        let entry = &out[out.find("[[container]]").unwrap_or_else(|| panic!("{out}"))..];
        let t: toml::Table = toml::from_str(entry).unwrap();
        let c = &t["container"][0];
        assert_eq!(c["id"].as_str(), Some("web2"), "{entry}");
        assert_eq!(c["private"].as_str(), Some(to_s), "{entry}");
        assert_eq!(c["runtime"].as_str(), Some("cgroup"), "{entry}");
        assert!(
            err.contains("set `cgroup`"),
            "{kind}: the cgroup is not named after the id: {err}"
        );
    }
    drop(cg);
}

#[test]
fn a_killed_copy_leaves_nothing_that_recover_does_not_remove() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("web");
    std::fs::write(private.join("a"), "x".repeat(100_000)).unwrap();
    std::fs::create_dir(private.join("d")).unwrap();
    std::fs::write(private.join("d/b"), "y").unwrap();
    let ct = Ct::new("web", &cg, &private);
    for (kind, env, work) in backed_up(&vol.volume(), &ct) {
        let to = work.path().join("web2");
        for fault in ["mid-restore", "before-register"] {
            let out = env
                .command()
                .args([
                    "restore",
                    "web",
                    "--as",
                    "web2",
                    "--to",
                    to.to_str().unwrap(),
                ])
                .env("FREEZEFRAME_FAULT", fault)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                None,
                "{kind} {fault}: killed by the fault"
            );
            let left = common::names_in(work.path());
            assert!(
                left.len() == 1 && left[0].starts_with(".freezeframe-restore-web2-"),
                "{kind} {fault}: the staging folder, nothing in place: {left:?}"
            );
            let (code, out, err) = env.run(&["recover"]);
            assert_eq!(code, 0, "{kind} {fault}: {out}{err}");
            assert!(
                (out.clone() + &err).contains("removed restore staging folder"),
                "{kind} {fault}: {out}{err}"
            );
            assert!(
                common::names_in(work.path()).is_empty(),
                "{kind} {fault}: {:?}",
                common::names_in(work.path())
            );
        }
        // And then it works.
        let (code, out, err) = env.run(&[
            "restore",
            "web",
            "--as",
            "web2",
            "--to",
            to.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        assert_eq!(std::fs::read_to_string(to.join("d/b")).unwrap(), "y");
        // A recover after a good copy removes nothing of it.
        let (code, _, _) = env.run(&["recover"]);
        assert_eq!(code, 0);
        assert!(to.join("a").exists(), "{kind}");
    }
    drop(cg);
}

fn caps_hex(p: &Path) -> String {
    sh(&format!(
        "getfattr --absolute-names -e hex -n security.capability {} 2>/dev/null | sed -n 's/^security.capability=//p'",
        p.display()
    ))
    .trim()
    .to_owned()
}

#[test]
fn map_ids_shifts_owners_and_keeps_what_chown_drops() {
    if !privileged()
        || !require(
            "setcap, setfacl, getfattr (apt-get install libcap2-bin acl attr)",
            which("setcap") && which("setfacl") && which("getfattr"),
        )
    {
        return;
    }
    let d = tempfile::Builder::new()
        .prefix("ff-shift-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root: PathBuf = d.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    let r = root.display();
    sh(&format!(
        "cd {r} && mkdir etc && echo x > etc/passwd && echo s > suid && echo c > caps2 && echo c > caps3 && \
         echo a > acl && ln -s etc/passwd link && echo o > outside && ln etc/passwd hardlink && \
         chown -R 100000:100000 . && chown 0:0 . && chown 101000:101002 etc/passwd && chown -h 100033:100033 link && chown 5:5 outside && \
         chmod 4755 suid && setcap cap_net_raw+ep caps2 && setcap -n 100000 cap_net_raw+ep caps3 && \
         setfacl -m u:101000:rw,g:101001:r acl"
    ));
    let map = |s: &str| freezeframe::IdMap(freezeframe::IdRange::parse(s).unwrap());
    let shift = freezeframe::IdShift {
        from: map("b 0 100000 65536"),
        to: map("b 0 300000 65536"),
    };
    let report = freezeframe::shift_tree(&root, &shift).unwrap();
    let owner = |p: &str| {
        let m = std::fs::symlink_metadata(root.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        owner("."),
        (300000, 300000),
        "an unmapped root goes to the new root"
    );
    assert_eq!(owner("etc/passwd"), (301000, 301002));
    assert_eq!(owner("link"), (300033, 300033), "the symlink itself");
    assert_eq!(owner("outside"), (5, 5), "not in the old map: left alone");
    assert_eq!(report.unmapped_count, 1, "{report:?}");
    assert!(
        report.unmapped[0].starts_with("./outside 5:5"),
        "{report:?}"
    );
    assert_eq!(
        std::fs::metadata(root.join("suid")).unwrap().mode() & 0o7777,
        0o4755,
        "set-user-id kept"
    );
    assert_eq!(
        caps_hex(&root.join("caps2")),
        "0x0100000200200000000000000000000000000000"
    );
    assert_eq!(
        caps_hex(&root.join("caps3")),
        "0x0100000300200000000000000000000000000000e0930400",
        "v3 root id 100000 → 300000"
    );
    let acl = sh(&format!("getfacl -n --absolute-names {r}/acl"));
    assert!(
        acl.contains("user:301000:rw-") && acl.contains("group:301001:r--"),
        "{acl}"
    );
}
