//! Parsing `lvs` / `vgs --reportformat json --units b --nosuffix`: pure
//! functions, tested on output captured from the real tools (`fixtures/`).

use serde::Deserialize;

/// The `lvs -o` fields we ask for, in order.
pub const LV_FIELDS: &str = "lv_name,vg_name,lv_attr,lv_size,origin,pool_lv,snap_percent,data_percent,metadata_percent,lv_tags,lv_kernel_major,lv_kernel_minor,lv_uuid,thin_id,lv_dm_path";

/// The `vgs -o` fields we ask for.
pub const VG_FIELDS: &str = "vg_name,vg_size,vg_free,vg_extent_size";

/// One logical volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    /// LV name.
    pub name: String,
    /// VG name.
    pub vg: String,
    /// The 10-character attribute string (`owi-aos---`).
    pub attr: String,
    /// Size in bytes.
    pub size: u64,
    /// Origin of a snapshot.
    pub origin: String,
    /// Thin pool of a thin LV.
    pub pool: String,
    /// COW usage of a classic snapshot, %.
    pub snap_percent: Option<f64>,
    /// Data usage (thin LV or pool), %.
    pub data_percent: Option<f64>,
    /// Metadata usage (thin pool), %.
    pub metadata_percent: Option<f64>,
    /// Tags.
    pub tags: Vec<String>,
    /// Kernel device numbers (-1 when inactive).
    pub dev: (i64, i64),
    /// LVM's UUID of the LV (empty in reports that lack it).
    pub uuid: String,
    /// The device id inside its thin pool (thin LVs only).
    pub thin_id: Option<u64>,
    /// Its device-mapper path (`/dev/mapper/vg-lv`).
    pub dm_path: String,
}

impl Lv {
    fn attr(&self, i: usize) -> char {
        self.attr.chars().nth(i).unwrap_or('-')
    }
    /// `vg/lv`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.vg, self.name)
    }
    /// A thin LV (or thin snapshot).
    pub fn is_thin(&self) -> bool {
        self.attr(0) == 'V'
    }
    /// A thin pool.
    #[cfg(test)]
    pub fn is_thin_pool(&self) -> bool {
        self.attr(0) == 't'
    }
    /// A classic (COW) snapshot.
    #[cfg(test)]
    pub fn is_cow_snapshot(&self) -> bool {
        matches!(self.attr(0), 's' | 'S')
    }
    /// State `I`: an invalid (overflowed) snapshot.
    pub fn is_invalid(&self) -> bool {
        self.attr(4) == 'I'
    }
    /// Carries the activation-skip flag (thin snapshots: activate with `-K`).
    #[cfg(test)]
    pub fn skips_activation(&self) -> bool {
        self.attr(9) == 'k'
    }
    /// Has this tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// One volume group.
#[derive(Debug, Clone, PartialEq)]
pub struct Vg {
    /// VG name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Free bytes.
    pub free: u64,
    /// Extent size in bytes.
    pub extent: u64,
}

#[derive(Deserialize)]
struct Report<T> {
    report: Vec<T>,
}

#[derive(Deserialize)]
struct LvSection {
    lv: Vec<RawLv>,
}

#[derive(Deserialize)]
struct VgSection {
    vg: Vec<RawVg>,
}

#[derive(Deserialize)]
struct RawLv {
    lv_name: String,
    vg_name: String,
    lv_attr: String,
    lv_size: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    pool_lv: String,
    #[serde(default)]
    snap_percent: String,
    #[serde(default)]
    data_percent: String,
    #[serde(default)]
    metadata_percent: String,
    #[serde(default)]
    lv_tags: String,
    #[serde(default)]
    lv_kernel_major: String,
    #[serde(default)]
    lv_kernel_minor: String,
    #[serde(default)]
    lv_uuid: String,
    #[serde(default)]
    thin_id: String,
    #[serde(default)]
    lv_dm_path: String,
}

#[derive(Deserialize)]
struct RawVg {
    vg_name: String,
    vg_size: String,
    vg_free: String,
    vg_extent_size: String,
}

fn num(field: &str, v: &str) -> Result<u64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("lvm report: {field} `{v}` is not a number of bytes"))
}

fn pct(v: &str) -> Option<f64> {
    v.trim().parse().ok()
}

/// Parses `lvs --reportformat json --units b --nosuffix -o LV_FIELDS`.
pub fn parse_lvs(json: &str) -> Result<Vec<Lv>, String> {
    let r: Report<LvSection> = serde_json::from_str(json)
        .map_err(|e| format!("lvs output is not the expected JSON: {e}"))?;
    r.report
        .into_iter()
        .flat_map(|s| s.lv)
        .map(|l| {
            Ok(Lv {
                size: num("lv_size", &l.lv_size)?,
                snap_percent: pct(&l.snap_percent),
                data_percent: pct(&l.data_percent),
                metadata_percent: pct(&l.metadata_percent),
                tags: l
                    .lv_tags
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
                dev: (
                    l.lv_kernel_major.trim().parse().unwrap_or(-1),
                    l.lv_kernel_minor.trim().parse().unwrap_or(-1),
                ),
                thin_id: l.thin_id.trim().parse().ok(),
                uuid: l.lv_uuid,
                dm_path: l.lv_dm_path,
                name: l.lv_name,
                vg: l.vg_name,
                attr: l.lv_attr,
                origin: l.origin,
                pool: l.pool_lv,
            })
        })
        .collect()
}

/// Parses `vgs --reportformat json --units b --nosuffix -o VG_FIELDS`.
pub fn parse_vgs(json: &str) -> Result<Vec<Vg>, String> {
    let r: Report<VgSection> = serde_json::from_str(json)
        .map_err(|e| format!("vgs output is not the expected JSON: {e}"))?;
    r.report
        .into_iter()
        .flat_map(|s| s.vg)
        .map(|v| {
            Ok(Vg {
                size: num("vg_size", &v.vg_size)?,
                free: num("vg_free", &v.vg_free)?,
                extent: num("vg_extent_size", &v.vg_extent_size)?,
                name: v.vg_name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> String {
        std::fs::read_to_string(super::super::fixture(name)).unwrap()
    }

    fn find<'a>(lvs: &'a [Lv], name: &str) -> &'a Lv {
        lvs.iter().find(|l| l.name == name).unwrap()
    }

    #[test]
    fn plain_lvs_and_vgs() {
        let lvs = parse_lvs(&fx("lvs_plain.json")).unwrap();
        let ext = find(&lvs, "ext");
        assert_eq!(
            (ext.vg.as_str(), ext.size, ext.dev),
            ("ffvg", 209_715_200, (253, 0))
        );
        assert!(!ext.is_thin() && !ext.is_cow_snapshot() && !ext.is_invalid());
        let vgs = parse_vgs(&fx("vgs.json")).unwrap();
        assert_eq!(
            vgs[0],
            Vg {
                name: "ffvg".into(),
                size: 2_143_289_344,
                free: 1_723_858_944,
                extent: 4_194_304
            }
        );
    }

    #[test]
    fn healthy_then_overflowed_cow_snapshot() {
        let ok = parse_lvs(&fx("lvs_snapshot.json")).unwrap();
        let s = find(&ok, "ff-20261124T180501-data");
        assert!(s.is_cow_snapshot() && !s.is_invalid() && s.has_tag("freezeframe"));
        assert_eq!((s.origin.as_str(), s.snap_percent), ("ext", Some(0.15)));
        assert!(!find(&ok, "usersnap").has_tag("freezeframe"));
        let bad = parse_lvs(&fx("lvs_overflow.json")).unwrap();
        let s = find(&bad, "ff-20261124T180501-data");
        assert!(s.is_invalid());
        assert_eq!(s.snap_percent, Some(100.0));
    }

    #[test]
    fn thin_pool_lv_and_snapshot() {
        let lvs = parse_lvs(&fx("lvs_thin_inactive.json")).unwrap();
        let snap = find(&lvs, "ff-20261124T180501-thin");
        assert!(snap.is_thin() && snap.skips_activation());
        assert_eq!((snap.pool.as_str(), snap.dev), ("pool", (-1, -1)));
        let pool = find(&lvs, "pool");
        assert!(pool.is_thin_pool());
        assert_eq!(
            (pool.data_percent, pool.metadata_percent),
            (Some(9.33), Some(11.33))
        );
        let active = parse_lvs(&fx("lvs_thin.json")).unwrap();
        assert_eq!(find(&active, "ff-20261124T180501-thin").dev, (253, 7));
        let tagged = parse_lvs(&fx("lvs_tagged.json")).unwrap();
        assert_eq!(tagged.len(), 1);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_lvs("not json").is_err());
        assert!(parse_lvs(
            r#"{"report":[{"lv":[{"lv_name":"a","vg_name":"v","lv_attr":"x","lv_size":"big"}]}]}"#
        )
        .is_err());
    }
}
