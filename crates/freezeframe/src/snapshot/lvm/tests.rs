//! The LVM provider on output captured from the real tools (`fixtures/`).

use super::*;
use crate::sys::{CommandError, CommandOutput};

/// Answers `lvs`/`vgs` with captured output, records everything else.
struct Fake {
    lvs: String,
    calls: Mutex<Vec<String>>,
    /// `lvremove` fails; `Some(true)`: because someone else removed the
    /// LV meanwhile (it is gone from then on).
    lvremove_fails: Mutex<Option<bool>>,
    /// LVs `lvs` no longer shows.
    hidden: Mutex<Vec<String>>,
}

impl Fake {
    /// A fake answering `lvs` with the report `lvs`.
    fn new(lvs: String) -> Arc<Self> {
        Arc::new(Self {
            lvs,
            calls: Mutex::default(),
            lvremove_fails: Mutex::default(),
            hidden: Mutex::default(),
        })
    }
}

impl CommandRunner for Fake {
    fn run(&self, cmd: &Cmd) -> Result<CommandOutput, CommandError> {
        self.calls.lock().unwrap().push(cmd.to_string());
        let fails = *self.lvremove_fails.lock().unwrap();
        if let (Some(vanished), "lvremove") = (fails, cmd.program()) {
            if vanished {
                let dev = cmd.args().last().unwrap().to_string_lossy().into_owned();
                let name = dev.rsplit('/').next().unwrap().to_owned();
                self.hidden.lock().unwrap().push(name);
            }
            return Err(CommandError::Failed {
                cmdline: cmd.to_string(),
                status: "exit status: 5".into(),
                stderr: "Failed to find logical volume".into(),
            });
        }
        let stdout = match cmd.program() {
            "lvs" => {
                let all = parse_lvs(&self.lvs).unwrap();
                let target = cmd
                    .args()
                    .last()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let keep: Vec<String> = all
                    .iter()
                    .filter(|l| !self.hidden.lock().unwrap().contains(&l.name))
                    .filter(|l| {
                        target == l.vg
                            || target == l.full_name()
                            || target.starts_with("lv_")
                            || target == "lv_tags=freezeframe"
                    })
                    .map(|l| l.name.clone())
                    .collect();
                filter_report(&self.lvs, &keep)
            }
            "vgs" => fx("vgs.json"),
            _ => String::new(),
        };
        Ok(CommandOutput {
            stdout,
            stderr: String::new(),
        })
    }
}

fn filter_report(json: &str, keep: &[String]) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    let lvs = v["report"][0]["lv"].as_array_mut().unwrap();
    lvs.retain(|l| keep.iter().any(|k| l["lv_name"] == k.as_str()));
    v.to_string()
}

fn fx(name: &str) -> String {
    std::fs::read_to_string(super::fixture(name)).unwrap()
}

fn provider(lvs: &str, thin: bool) -> (LvmProvider, Arc<Fake>) {
    let fake = Fake::new(fx(lvs));
    let mi = super::fixture("mountinfo.txt");
    (
        LvmProvider::new(fake.clone(), thin).with_mountinfo(mi),
        fake,
    )
}

fn volume(size: &str) -> Volume {
    Volume {
        name: "data".into(),
        path: "/mnt/ext".into(),
        provider: ProviderKind::Lvm,
        snapshot_dir: "/run/ff".into(),
        keep_base: None,
        lvm: Some(LvmOptions {
            lv: None,
            snapshot_size: size.parse().unwrap(),
            warn_percent: 80.0,
            autoextend_percent: None,
            thin_max_data_percent: 80.0,
            thin_max_metadata_percent: 80.0,
        }),
    }
}

fn owner() -> Owner {
    Owner {
        pid: 42,
        started: 7,
        boot: "ab".repeat(16),
        state_dir: "/var/lib/ff".into(),
        run: "r".into(),
    }
}

#[test]
fn command_lines() {
    // The owner, then its state dir (`/var/lib/ff`, hex).
    let tag = format!(
        "ffowner_42_7_{} --addtag ffstate_2f7661722f6c69622f6666",
        "ab".repeat(16)
    );
    assert_eq!(
        create_cmd("ffvg/ext", "ff-1-data", Some(44), &owner()).to_string(),
        format!("lvcreate -s -L 44m -n ff-1-data --addtag freezeframe --addtag {tag} ffvg/ext")
    );
    assert_eq!(
        create_cmd("ffvg/thin", "ff-1-t", None, &owner()).to_string(),
        format!("lvcreate -s -n ff-1-t --addtag freezeframe --addtag {tag} ffvg/thin")
    );
    assert!(lvs_cmd(Some("ffvg"), true)
        .to_string()
        .ends_with("-S lv_tags=freezeframe ffvg"));
    assert_eq!(
        mount_options("xfs"),
        "ro,nosuid,nodev,noexec,norecovery,nouuid"
    );
    assert_eq!(mount_options("ext4"), "ro,nosuid,nodev,noexec,noload");
    // 20% of 200 MiB = 40 MiB, rounded up to 4 MiB extents.
    assert_eq!(snapshot_mib("20%".parse().unwrap(), 200 << 20, 4 << 20), 40);
    assert_eq!(snapshot_mib("10M".parse().unwrap(), 200 << 20, 4 << 20), 12);
}

#[test]
fn finds_the_origin_by_device_number_and_checks_space() {
    let (p, fake) = provider("lvs_plain.json", false);
    p.check(&volume("20%"), 1).unwrap();
    let h = p.handle(&volume("20%"), "ff-1-data").unwrap();
    assert_eq!(h.device.as_deref(), Some("ffvg/ff-1-data"));
    assert_eq!(h.origin.as_deref(), Some("ffvg/ext"));
    // 1644 MiB free; a 1G request on a 200 MiB origin is capped at 200
    // MiB, and nine of those do not fit.
    p.check(&volume("1G"), 8).unwrap();
    let e = p.check(&volume("1G"), 9).unwrap_err().to_string();
    assert!(
        e.contains("needs 1800 MiB for 9")
            && e.contains("only 1644 MiB free")
            && e.contains("snapshot_size"),
        "{e}"
    );
    assert!(matches!(
        p.create(&volume("20%"), "ff-1-data", &owner()),
        Err(SnapshotError::NotOurs(_))
    ));
    p.create(&volume("20%"), "ff-20261124T180501-data", &owner())
        .unwrap();
    let want = format!(
        "lvcreate -s -L 40m -n ff-20261124T180501-data --addtag freezeframe --addtag {} --addtag {} ffvg/ext",
        owner().to_tag(),
        owner().state_tag().unwrap()
    );
    assert!(fake.calls.lock().unwrap().contains(&want));
}

#[test]
fn a_plain_directory_is_refused() {
    let (p, _) = provider("lvs_plain.json", false);
    let mut v = volume("20%");
    v.path = "/mnt/nowhere".into();
    assert!(p
        .check(&v, 1)
        .unwrap_err()
        .to_string()
        .contains("is not a mount point"));
}

#[test]
fn overflow_is_invalid_with_advice() {
    let (p, _) = provider("lvs_overflow.json", false);
    let snap = Snapshot {
        name: "ff-20261124T180501-data".into(),
        volume: "data".into(),
        root: "/run/ff/x".into(),
        device: Some("ffvg/ff-20261124T180501-data".into()),
        origin: None,
    };
    let h = p.health(&snap).unwrap();
    let why = h.invalid.unwrap();
    assert!(
        why.contains("overflowed") && why.contains("8 MiB") && why.contains("snapshot_size"),
        "{why}"
    );
    assert_eq!(h.used_percent, Some(100.0));
    let (p, _) = provider("lvs_snapshot.json", false);
    let h = p.health(&snap).unwrap();
    assert_eq!(
        h,
        Health {
            invalid: None,
            used_percent: Some(0.15)
        }
    );
}

#[test]
fn removes_only_tagged_ff_snapshots() {
    let (p, fake) = provider("lvs_snapshot.json", false);
    let user = Snapshot {
        name: "usersnap".into(),
        volume: "data".into(),
        root: "/run/ff/usersnap".into(),
        device: Some("ffvg/usersnap".into()),
        origin: None,
    };
    assert!(p.remove(&user).is_err());
    let mut ours = user.clone();
    ours.name = "ff-20261124T180501-data".into();
    ours.device = Some("ffvg/ff-20261124T180501-data".into());
    p.remove(&ours).unwrap();
    assert!(fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|c| c == "lvremove -f ffvg/ff-20261124T180501-data"));
    let listed = p.list(&volume("20%")).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|f| (
                f.snapshot.name.as_str(),
                f.foreign.is_none(),
                f.owner.is_some()
            ))
            .collect::<Vec<_>>(),
        [("ff-20261124T180501-data", true, false)]
    );
}

#[test]
fn an_lv_removed_by_someone_else_meanwhile_is_removed_not_a_failure() {
    let (p, fake) = provider("lvs_snapshot.json", false);
    let name = "ff-20261124T180501-data";
    let snap = Snapshot {
        name: name.into(),
        volume: "data".into(),
        root: format!("/run/ff/{name}").into(),
        device: Some(format!("ffvg/{name}")),
        origin: None,
    };
    // lvremove fails and the LV is still there: a failure.
    *fake.lvremove_fails.lock().unwrap() = Some(false);
    assert!(p.remove(&snap).is_err());
    // lvremove fails because the LV went meanwhile: removed.
    *fake.lvremove_fails.lock().unwrap() = Some(true);
    p.remove(&snap).unwrap();
    assert!(fake.hidden.lock().unwrap().iter().any(|h| h == name));
}

#[test]
fn the_sweep_sees_owners_and_foreign_lvs_and_remove_checks_the_origin() {
    // The captured report, plus: our snapshot carries its owner; an
    // untagged LV and a tagged snapshot of another origin are named
    // like ours.
    let mut v: serde_json::Value = serde_json::from_str(&fx("lvs_snapshot.json")).unwrap();
    let lvs = v["report"][0]["lv"].as_array_mut().unwrap();
    let ours = lvs
        .iter_mut()
        .find(|l| l["lv_name"] == "ff-20261124T180501-data")
        .unwrap();
    ours["lv_tags"] = format!("freezeframe,{}", owner().to_tag()).into();
    let mut untagged = ours.clone();
    untagged["lv_name"] = "ff-20261124T180502-data".into();
    untagged["lv_tags"] = "".into();
    let mut other = ours.clone();
    other["lv_name"] = "ff-20261124T180503-data".into();
    other["origin"] = "xfs".into();
    lvs.push(untagged);
    lvs.push(other);
    let fake = Fake::new(v.to_string());
    let p = LvmProvider::new(fake.clone(), false).with_mountinfo(super::fixture("mountinfo.txt"));
    let found = p.list(&volume("20%")).unwrap();
    let by_name = |n: &str| found.iter().find(|f| f.snapshot.name == n).unwrap();
    let o = by_name("ff-20261124T180501-data");
    assert_eq!(o.foreign, None);
    assert_eq!(o.owner.as_ref().map(|o| o.pid), Some(42));
    assert!(by_name("ff-20261124T180502-data")
        .foreign
        .as_deref()
        .unwrap()
        .contains("not tagged"));
    let f = by_name("ff-20261124T180503-data");
    assert!(f.foreign.as_deref().unwrap().contains("ffvg/xfs"), "{f:?}");
    // Its handle names the volume's origin, so remove refuses it.
    let e = p.remove(&f.snapshot).unwrap_err();
    assert!(matches!(e, SnapshotError::NotOurs(_)), "{e}");
    assert!(!fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.starts_with("lvremove") || c.starts_with("umount")));
}

#[test]
fn thin_pool_thresholds() {
    let (p, _) = provider("lvs_thin.json", true);
    let mut v = volume("20%");
    v.path = "/mnt/ext".into();
    // /mnt/ext is the classic LV ext: the thin provider refuses it.
    assert!(p
        .check(&v, 1)
        .unwrap_err()
        .to_string()
        .contains("not a thin LV"));
}
