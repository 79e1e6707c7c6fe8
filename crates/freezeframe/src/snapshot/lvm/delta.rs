//! What differs between two thin devices of one pool, read from
//! `thin_delta -m --snap1 BASE --snap2 NEW` (thin-provisioning-tools):
//! pure parsing, tested on output captured from the real tool
//! (`fixtures/thin_delta.xml`).
//!
//! The tool compares the two devices' block mappings in the pool's
//! metadata snapshot. A block of the thin devices' (virtual) address space
//! is listed `same` when both map it to the same data block, `different`,
//! `left_only` or `right_only` otherwise; a block neither maps is not
//! listed (both read zeros). So every block not in [`ThinDelta::changed`]
//! reads the same bytes from both devices.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::sys::ranges::merged;

/// The changed blocks between two thin devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinDelta {
    /// The pool's data block size, in bytes.
    pub block_bytes: u64,
    /// The base's thin device id (`--snap1`).
    pub left: u64,
    /// The new device's thin id (`--snap2`).
    pub right: u64,
    /// Sorted, merged `[start, end)` ranges of changed blocks (in blocks).
    pub changed: Vec<(u64, u64)>,
}

impl ThinDelta {
    /// Whether any byte of `[start, end)` (bytes of the thin device's
    /// address space) lies in a changed block; the changed sub-ranges, in
    /// bytes, clipped to `[start, end)`, are pushed to `out`.
    pub fn changed_bytes(&self, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
        if start >= end || self.block_bytes == 0 {
            return;
        }
        let first = start / self.block_bytes;
        let last = (end - 1) / self.block_bytes;
        let from = self.changed.partition_point(|&(_, e)| e <= first);
        for &(a, b) in &self.changed[from..] {
            if a > last {
                break;
            }
            let s = (a * self.block_bytes).max(start);
            let e = (b.saturating_mul(self.block_bytes)).min(end);
            if s < e {
                out.push((s, e));
            }
        }
    }
}

/// Why `thin_delta`'s output was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// Not well-formed XML.
    #[error("thin_delta output is not XML: {0}")]
    Xml(String),
    /// An element or attribute this parser does not know, or a bad value.
    #[error("thin_delta output has {0}")]
    Unexpected(String),
    /// It compares other devices than asked.
    #[error("thin_delta compared devices {got_left} and {got_right}, not {left} and {right}")]
    OtherDevices {
        /// Asked base.
        left: u64,
        /// Asked new.
        right: u64,
        /// Compared base.
        got_left: u64,
        /// Compared new.
        got_right: u64,
    },
    /// No `superblock`, no `diff`, or not closed.
    #[error("thin_delta output is incomplete ({0})")]
    Incomplete(&'static str),
}

fn number(e: &BytesStart, name: &str) -> Result<u64, DeltaError> {
    for a in e.attributes() {
        let a = a.map_err(|err| DeltaError::Xml(err.to_string()))?;
        if a.key.as_ref() == name {
            let v: &str = a.value.as_ref();
            return v
                .parse::<u64>()
                .map_err(|_| DeltaError::Unexpected(format!("a non-numeric {name} = {v:?}")));
        }
    }
    Err(DeltaError::Unexpected(format!(
        "a <{}> without {name}",
        e.name().as_ref()
    )))
}

/// Reads the output of `thin_delta -m --snap1 LEFT --snap2 RIGHT` (not
/// `--verbose`) and checks it compares exactly those devices.
pub fn parse(text: &str, left: u64, right: u64) -> Result<ThinDelta, DeltaError> {
    let mut r = Reader::from_str(text);
    let mut block_sectors = None;
    let mut ids = None;
    let mut closed = false;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    loop {
        let ev = r.read_event().map_err(|e| DeltaError::Xml(e.to_string()))?;
        match ev {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "superblock" => block_sectors = Some(number(&e, "data_block_size")?),
                "diff" => ids = Some((number(&e, "left")?, number(&e, "right")?)),
                "same" => {}
                "different" | "left_only" | "right_only" => {
                    if ids.is_none() {
                        return Err(DeltaError::Incomplete("a range outside <diff>"));
                    }
                    let (b, n) = (number(&e, "begin")?, number(&e, "length")?);
                    let end = b.checked_add(n).ok_or_else(|| {
                        DeltaError::Unexpected(format!("a range {b}+{n} past 2^64"))
                    })?;
                    ranges.push((b, end));
                }
                other => {
                    return Err(DeltaError::Unexpected(format!(
                        "an element <{other}> (is this --verbose output?)"
                    )))
                }
            },
            Event::End(e) if e.name().as_ref() == "superblock" => closed = true,
            Event::Eof => break,
            _ => {}
        }
    }
    let sectors = block_sectors.ok_or(DeltaError::Incomplete("no <superblock>"))?;
    let (got_left, got_right) = ids.ok_or(DeltaError::Incomplete("no <diff>"))?;
    if !closed {
        return Err(DeltaError::Incomplete("no </superblock>"));
    }
    if sectors == 0 || sectors > (1 << 21) {
        return Err(DeltaError::Unexpected(format!(
            "a data block size of {sectors} sectors"
        )));
    }
    if (got_left, got_right) != (left, right) {
        return Err(DeltaError::OtherDevices {
            left,
            right,
            got_left,
            got_right,
        });
    }
    Ok(ThinDelta {
        block_bytes: sectors * 512,
        left,
        right,
        changed: merged(ranges),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> String {
        std::fs::read_to_string(super::super::fixture("thin_delta.xml")).unwrap()
    }

    #[test]
    fn reads_the_real_tools_output() {
        let d = parse(&fixture(), 2, 3).unwrap();
        assert_eq!(d.block_bytes, 64 * 1024);
        assert_eq!(
            d.changed,
            vec![
                (0, 1),
                (16, 19),
                (530, 531),
                (2080, 2096),
                (2112, 2113),
                (2182, 2183),
                (16384, 16385)
            ]
        );
    }

    #[test]
    fn the_page_write_and_the_append_are_found_by_byte_range() {
        let d = parse(&fixture(), 2, 3).unwrap();
        // The file's first extent: 4 KiB blocks 34816..36864.
        let mut out = Vec::new();
        d.changed_bytes(34816 * 4096, 36864 * 4096, &mut out);
        assert_eq!(out, vec![(2182 * 65536, 2183 * 65536)]);
        // The appended extent, 33280..33536, lies in chunks 2080..2096.
        out.clear();
        d.changed_bytes(33280 * 4096, 33536 * 4096, &mut out);
        assert_eq!(out, vec![(33280 * 4096, 33536 * 4096)]);
        // A range inside one `same` run has nothing changed.
        out.clear();
        d.changed_bytes(2183 * 65536 + 100, 2190 * 65536, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn refuses_other_devices_verbose_output_and_truncation() {
        let t = fixture();
        assert!(matches!(
            parse(&t, 3, 2),
            Err(DeltaError::OtherDevices { got_left: 2, .. })
        ));
        let verbose = "<superblock data_block_size=\"128\"><diff left=\"2\" right=\"3\"><different><range begin=\"0\" left_data_begin=\"1\" right_data_begin=\"2\" length=\"1\"/></different></diff></superblock>";
        assert!(matches!(
            parse(verbose, 2, 3),
            Err(DeltaError::Unexpected(_))
        ));
        let cut = &t[..t.len() / 2];
        assert!(parse(cut, 2, 3).is_err());
        assert!(parse("", 2, 3).is_err());
        let bad = t.replace("begin=\"530\"", "begin=\"x\"");
        assert!(matches!(parse(&bad, 2, 3), Err(DeltaError::Unexpected(_))));
        let huge = t.replace(
            "<different begin=\"530\" length=\"1\"/>",
            "<different begin=\"18446744073709551615\" length=\"2\"/>",
        );
        assert!(parse(&huge, 2, 3).is_err());
    }
}
