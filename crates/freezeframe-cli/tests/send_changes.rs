//! The kernel's list of changes between two snapshots (`btrfs send
//! --no-data -p`), as freezeframe reads it, on a real btrfs volume: every
//! kind of edit a container's files see, checked against what was done and
//! against `btrfs receive --dump` reading the same stream.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{bin, privileged, require, sh, which, LoopBtrfs};
use serde_json::Value;

/// The changes from `base` to `new` as `freezeframe debug send-changes`
/// prints them, by path.
fn changes(base: &Path, new: &Path, scratch: &Path) -> BTreeMap<String, Value> {
    let out = bin::freezeframe(None)
        .args(["debug", "send-changes"])
        .arg(base)
        .arg(new)
        .arg("--scratch")
        .arg(scratch)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// `update_extent` lines of `btrfs receive --dump`: path → (offset, len).
fn dumped_extents(stream: &Path) -> Vec<(String, u64, u64)> {
    let dump = sh(&format!("btrfs receive --dump -f {}", stream.display()));
    dump.lines()
        .filter(|l| l.starts_with("update_extent"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[1].splitn(3, '/').nth(2).unwrap_or("").to_owned();
            let num = |k: &str| {
                f.iter()
                    .find_map(|x| x.strip_prefix(k))
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            };
            (path, num("offset="), num("len="))
        })
        .collect()
}

fn ranges(e: &Value) -> Vec<(u64, u64)> {
    e["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect()
}

#[test]
fn every_edit_is_seen_where_it_happened() {
    if !privileged() || !require("btrfs receive", which("btrfs")) {
        return;
    }
    let fs = LoopBtrfs::new("512M");
    let v = fs.volume();
    let snaps = fs.snapshots();
    let scratch = fs.dir.path();
    sh(&format!(
        "cd {v} && head -c 4194304 /dev/urandom > db && head -c 100000 /dev/urandom > log \
         && head -c 204800 /dev/urandom > shrink && head -c 262144 /dev/urandom > holey \
         && mkdir -p 'a dir/sub' && head -c 70000 /dev/urandom > 'a dir/sub/inner' \
         && echo x > moved && echo y > linked && echo z > perm && echo w > gone && sync",
        v = v.display()
    ));
    let base = snaps.join("base");
    let new = snaps.join("new");
    sh(&format!(
        "btrfs -q subvolume snapshot -r {} {}",
        v.display(),
        base.display()
    ));
    sh(&format!(
        "cd {v} && dd if=/dev/urandom of=db bs=4096 seek=100 count=2 conv=notrunc status=none \
         && dd if=/dev/urandom of=db bs=4096 seek=900 count=1 conv=notrunc status=none \
         && head -c 10000 /dev/urandom >> log && truncate -s 50000 shrink \
         && fallocate --punch-hole -o 8192 -l 16384 holey && mv 'a dir' 'b dir' \
         && dd if=/dev/urandom of='b dir/sub/inner' bs=4096 seek=1 count=1 conv=notrunc status=none \
         && mv moved 'moved to' && ln linked 'linked 2' && chmod 600 perm && rm gone \
         && echo new > fresh && sync",
        v = v.display()
    ));
    sh(&format!(
        "btrfs -q subvolume snapshot -r {} {}",
        v.display(),
        new.display()
    ));

    let c = changes(&base, &new, scratch);
    let db = &c["db"];
    assert_eq!(db["in_place"], true);
    assert_eq!(ranges(db), [(409_600, 417_792), (3_686_400, 3_690_496)]);
    assert_eq!(ranges(&c["log"]), [(98_304, 110_000)]);
    assert_eq!(c["shrink"]["truncated"], 50_000);
    assert_eq!(ranges(&c["holey"]), [(8192, 24_576)]);
    let inner = &c["b dir/sub/inner"];
    assert_eq!(inner["origin"], "a dir/sub/inner");
    assert_eq!(inner["in_place"], false);
    for p in ["moved to", "linked", "linked 2", "fresh"] {
        assert_eq!(c[p]["in_place"], false, "{p}");
    }
    assert_eq!(c["perm"]["metadata"], true);
    assert_eq!(c["perm"]["in_place"], true);
    assert!(!c.contains_key("gone") && !c.contains_key("moved"));
    // Unchanged files are not listed at all.
    assert!(c.keys().all(|p| !p.starts_with('o')), "{:?}", c.keys());

    // The same stream through btrfs-progs' own reader: every extent it
    // prints lies inside the ranges freezeframe read for that file (paths
    // without spaces; the dump escapes them).
    let stream = scratch.join("check.stream");
    sh(&format!(
        "btrfs -q send --no-data -p {} -f {} {}",
        base.display(),
        stream.display(),
        new.display()
    ));
    let dumped = dumped_extents(&stream);
    assert!(dumped.len() >= 5, "{dumped:?}");
    for (path, off, len) in dumped.iter().filter(|(p, _, _)| !p.contains('\\')) {
        let r = ranges(&c[path.as_str()]);
        assert!(
            r.iter().any(|&(a, b)| a <= *off && off + len <= b),
            "{path}: {off}+{len} not in {r:?}"
        );
    }

    // A snapshot that does not exist: btrfs fails, and the message names
    // the command.
    let bad = bin::freezeframe(None)
        .args(["debug", "send-changes"])
        .arg(&new)
        .arg(fs.mnt.join("missing"))
        .arg("--scratch")
        .arg(scratch)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("btrfs"));
    // The scratch stream files are gone.
    let left: Vec<_> = std::fs::read_dir(scratch)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".freezeframe-send-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // `fs` deletes both snapshots (in its snapshot folder) and the volume.
}
