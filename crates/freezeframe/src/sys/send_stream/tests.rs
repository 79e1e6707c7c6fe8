//! The parser against streams captured from `btrfs send --no-data -p`
//! (btrfs-progs 6.2, kernel 6.x; `fixtures/*.dump` is what `btrfs receive
//! --dump` printed for each) and against streams built here.

use std::path::Path;

use super::wire::{attr, cmd, crc32c};
use super::*;

/// A command as the kernel writes it, CRC included.
pub(super) fn encode(kind: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in attrs {
        body.extend_from_slice(&t.to_le_bytes());
        body.extend_from_slice(&(v.len() as u16).to_le_bytes());
        body.extend_from_slice(v);
    }
    let mut c = Vec::new();
    c.extend_from_slice(&(body.len() as u32).to_le_bytes());
    c.extend_from_slice(&kind.to_le_bytes());
    c.extend_from_slice(&[0; 4]);
    c.extend_from_slice(&body);
    let crc = crc32c(&c);
    c[6..10].copy_from_slice(&crc.to_le_bytes());
    c
}

/// A version-1 stream of `cmds`.
pub(super) fn stream(cmds: &[Vec<u8>]) -> Vec<u8> {
    let mut s = b"btrfs-stream\0".to_vec();
    s.extend_from_slice(&1u32.to_le_bytes());
    for c in cmds {
        s.extend_from_slice(c);
    }
    s
}

fn snapshot() -> Vec<u8> {
    encode(
        cmd::SNAPSHOT,
        &[
            (attr::PATH, b"new"),
            (attr::UUID, &[1; 16]),
            (attr::CTRANSID, &9u64.to_le_bytes()),
            (attr::CLONE_UUID, &[2; 16]),
            (attr::CLONE_CTRANSID, &7u64.to_le_bytes()),
        ],
    )
}

fn extent(path: &str, offset: u64, len: u64) -> Vec<u8> {
    encode(
        cmd::UPDATE_EXTENT,
        &[
            (attr::PATH, path.as_bytes()),
            (attr::FILE_OFFSET, &offset.to_le_bytes()),
            (attr::SIZE, &len.to_le_bytes()),
        ],
    )
}

fn rename(from: &str, to: &str) -> Vec<u8> {
    encode(
        cmd::RENAME,
        &[
            (attr::PATH, from.as_bytes()),
            (attr::PATH_TO, to.as_bytes()),
        ],
    )
}

fn parsed(cmds: &[Vec<u8>]) -> SendChanges {
    let mut all = vec![snapshot()];
    all.extend_from_slice(cmds);
    all.push(encode(cmd::END, &[]));
    parse(&stream(&all)).unwrap()
}

fn at<'a>(c: &'a SendChanges, p: &str) -> &'a FileChange {
    c.entries
        .get(Path::new(p))
        .unwrap_or_else(|| panic!("{p} not in {:?}", c.entries.keys()))
}

fn uuid(s: &str) -> [u8; 16] {
    let mut u = [0; 16];
    hex::decode_to_slice(s.replace('-', ""), &mut u).unwrap();
    u
}

#[test]
fn a_captured_stream_gives_every_files_ranges_truncation_and_origin() {
    for (name, bytes) in [
        ("v1", &include_bytes!("fixtures/edits.stream")[..]),
        ("v2", &include_bytes!("fixtures/edits-v2.stream")[..]),
    ] {
        let c = parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            c.uuid,
            uuid("e62a5cc6-5024-304a-9f92-2014c1698c34"),
            "{name}"
        );
        assert_eq!(c.ctransid, 113);
        assert_eq!(c.base_uuid, uuid("9c8761ac-48be-fe49-844a-e557e3400b87"));
        assert_eq!(c.base_ctransid, 111);
        assert_eq!(
            uuid_text(&c.base_uuid),
            "9c8761ac-48be-fe49-844a-e557e3400b87"
        );
        // Two 4 KiB pages rewritten in place.
        let db = at(&c, "db");
        assert!(db.in_place(Path::new("db")));
        assert_eq!(db.ranges, [(65536, 69632), (524288, 528384)]);
        assert_eq!(db.truncated, None);
        assert!(db.metadata);
        // Appended: the last partial block and the new ones, one range.
        assert_eq!(at(&c, "log").ranges, [(98304, 110240)]);
        assert_eq!(at(&c, "shrink").truncated, Some(51200));
        assert!(at(&c, "shrink").ranges.is_empty());
        // A punched hole is a changed range.
        assert_eq!(at(&c, "holey").ranges, [(8192, 24576)]);
        // Bytes inserted in the middle: everything from there on.
        assert_eq!(at(&c, "insert").ranges, [(0, 304096)]);
        assert_eq!(at(&c, "grow").truncated, Some(1_000_000));
        // Below a renamed folder: changed, but not in place.
        let inner = at(&c, "dir two/sub/inner");
        assert_eq!(
            inner.origin.as_deref(),
            Some(Path::new("dir one/sub/inner"))
        );
        assert!(!inner.in_place(Path::new("dir two/sub/inner")));
        assert_eq!(inner.ranges, [(8192, 12288)]);
        // `mv` inside one folder comes as link + unlink; new files from
        // temporary names; hard links: none of them in place.
        assert!(!at(&c, "moved to").in_place(Path::new("moved to")));
        assert!(!at(&c, "newfile").in_place(Path::new("newfile")));
        assert_eq!(at(&c, "newfile").origin, None);
        assert!(!at(&c, "linked").in_place(Path::new("linked")));
        assert!(!at(&c, "linked 2").in_place(Path::new("linked 2")));
        assert!(!c.entries.contains_key(Path::new("removed")));
        assert!(!c.entries.contains_key(Path::new("moved")));
        assert!(c
            .entries
            .keys()
            .all(|p| !p.to_string_lossy().starts_with('o')));
        // Metadata only; a non-ASCII name; the root itself (empty path).
        let perm = at(&c, "perm");
        assert!(perm.metadata && perm.ranges.is_empty() && perm.in_place(Path::new("perm")));
        assert!(at(&c, "ünï cödé").metadata);
        assert!(at(&c, "").metadata);
    }
}

#[test]
fn swapped_files_and_moved_folders_keep_their_base_paths() {
    let c = parse(include_bytes!("fixtures/moves.stream")).unwrap();
    assert_eq!(at(&c, "s1").origin.as_deref(), Some(Path::new("s2")));
    assert!(!at(&c, "s1").in_place(Path::new("s1")));
    assert!(!at(&c, "s2").in_place(Path::new("s2")));
    let f = at(&c, "d2top/f");
    assert_eq!(f.origin.as_deref(), Some(Path::new("d1/d2/f")));
    assert_eq!(f.ranges, [(0, 10)]);
    assert_eq!(at(&c, "d9/newdir/nf").origin, None);
    assert_eq!(at(&c, "d9").origin.as_deref(), Some(Path::new("d1")));
}

#[test]
fn a_full_stream_is_not_used() {
    assert_eq!(
        parse(include_bytes!("fixtures/full.stream")),
        Err(StreamError::NotIncremental)
    );
}

#[test]
fn a_captured_stream_damaged_anywhere_is_refused() {
    let good = include_bytes!("fixtures/edits.stream");
    for i in (0..good.len()).step_by(7) {
        let mut bad = good.to_vec();
        bad[i] ^= 0x01;
        assert!(parse(&bad).is_err(), "byte {i} flipped");
        assert!(parse(&good[..i]).is_err(), "cut at {i}");
    }
}

#[test]
fn a_folder_renamed_after_its_file_changed_moves_the_file_along() {
    let c = parsed(&[extent("d/f", 0, 10), rename("d", "e"), extent("e/g", 5, 5)]);
    assert_eq!(at(&c, "e/f").origin.as_deref(), Some(Path::new("d/f")));
    assert_eq!(at(&c, "e/g").origin.as_deref(), Some(Path::new("d/g")));
    assert!(!c.entries.contains_key(Path::new("d/f")));
}

#[test]
fn a_file_made_below_a_new_folder_has_no_origin() {
    let mk = |k, p: &str| encode(k, &[(attr::PATH, p.as_bytes())]);
    let c = parsed(&[
        mk(cmd::MKDIR, "o1-1-0"),
        rename("o1-1-0", "n"),
        mk(cmd::MKFILE, "n/f"),
        extent("n/f", 0, 3),
    ]);
    assert_eq!(at(&c, "n/f").origin, None);
    // A path first met below a new folder cannot have been in the base.
    let c = parsed(&[mk(cmd::MKDIR, "n"), extent("n/x", 0, 1)]);
    assert_eq!(at(&c, "n/x").origin, None);
}

#[test]
fn unknown_commands_and_odd_sizes_are_errors() {
    let odd = encode(
        cmd::UPDATE_EXTENT,
        &[
            (attr::PATH, b"f"),
            (attr::FILE_OFFSET, &u64::MAX.to_le_bytes()),
            (attr::SIZE, &2u64.to_le_bytes()),
        ],
    );
    for bad in [encode(99, &[]), encode(cmd::SUBVOL, &[]), odd] {
        let s = stream(&[snapshot(), bad, encode(cmd::END, &[])]);
        assert!(parse(&s).is_err());
    }
    let s = stream(&[
        snapshot(),
        encode(cmd::TRUNCATE, &[(attr::PATH, b"f")]),
        encode(cmd::END, &[]),
    ]);
    assert!(matches!(
        parse(&s),
        Err(StreamError::MissingAttribute { .. })
    ));
}

#[test]
fn ranges_merge_when_they_touch_and_stay_sorted() {
    let mut f = FileChange::default();
    for (a, b) in [(10, 20), (30, 40), (20, 25), (0, 5), (35, 50), (7, 7)] {
        f.add_range(a, b);
    }
    assert_eq!(f.ranges, [(0, 5), (10, 25), (30, 50)]);
    f.add_range(4, 31);
    assert_eq!(f.ranges, [(0, 50)]);
    assert_eq!(f.range_bytes(), 50);
}
