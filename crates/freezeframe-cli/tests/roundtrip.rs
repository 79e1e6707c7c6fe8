//! Round trip of a tree holding every file type: `freezeframe backup`, then
//! GNU tar (with the standard zstd/bzip2/gzip tools) and `freezeframe
//! restore` must both give back the source tree exactly.

#![allow(clippy::unwrap_used)]

mod common;

use common::tree::{assert_same, describe};
use common::{privileged, require, sh, which, Ct, Env};

#[test]
fn every_file_type_round_trips_through_gnu_tar_and_restore() {
    if !privileged()
        || !require("zstd", which("zstd"))
        || !require("bzip2", which("bzip2"))
        || !require("setfacl (acl)", which("setfacl"))
        || !require("setfattr (attr)", which("setfattr"))
    {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    common::every_file_type(&private);
    let conf = vol.dir.path().join("101.conf");
    std::fs::write(&conf, "hostname=ct101\n").unwrap();
    let env = Env::new(
        &vol.volume(),
        &[Ct {
            id: "101".into(),
            cgroup: cg.rel.clone(),
            private: private.clone(),
            config: Some(conf),
        }],
        "",
    );
    let source = describe(&private);

    for (compress, ext, decompress) in [
        ("zstd", "tar.zst", "zstd -dc"),
        ("bzip2", "tar.bz2", "bzip2 -dc"),
        ("gzip", "tar.gz", "gzip -dc"),
    ] {
        let m = env.backup_json(&["101", "--compress", compress]);
        let ct = &m["containers"][0];
        assert_eq!(ct["result"], "ok", "{ct}");
        assert_eq!(ct["tree"]["skipped_sockets"][0], "./sock", "{ct}");
        assert!(ct["freeze_ms"].as_f64().unwrap() > 0.0);
        let run = m["run"].as_str().unwrap().to_owned();
        let archive = env.target.join(&run).join(format!("101.{ext}"));
        assert!(archive.exists());
        if compress == "zstd" {
            // Every frame carries a content checksum (a flipped byte in a
            // raw block fails `zstd -t` and GNU tar, not only our verify).
            let frames = sh(&format!("zstd -lv {}", archive.display()));
            assert!(frames.contains("Check: XXH64"), "{frames}");
        }

        // (a) GNU tar with the standard decompressor
        let gnu = vol.dir.path().join(format!("gnu-{compress}"));
        std::fs::create_dir(&gnu).unwrap();
        sh(&format!(
            "{decompress} {} | tar -x --xattrs --xattrs-include='*' --acls --numeric-owner -p -C {}",
            archive.display(),
            gnu.display()
        ));
        assert_same(&format!("GNU tar, {compress}"), &source, &describe(&gnu));

        // (b) freezeframe restore
        let out = vol.dir.path().join(format!("ff-{compress}"));
        let (code, stdout, stderr) = env.run(&[
            "restore",
            "101",
            "--run",
            &run,
            "--to",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_same(
            &format!("freezeframe restore, {compress}"),
            &source,
            &describe(&out),
        );
        let conf_out =
            std::fs::read_to_string(vol.dir.path().join(format!("ff-{compress}.conf"))).unwrap();
        assert_eq!(conf_out, "hostname=ct101\n");
    }
    let (code, out, err) = env.run(&["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("6 checked, 0 bad"), "{out}");
    assert!(
        vol.snapshot_folder().is_empty(),
        "snapshots left: {:?}",
        vol.snapshot_folder()
    );
}
