//! Watching live snapshots while they are read: usage is polled, a warning
//! is recorded past the volume's `warn_percent`, a classic LVM snapshot is
//! grown past `autoextend_percent`, and an invalid snapshot is remembered so
//! no backup read from it is reported good. The peak usage of each snapshot
//! goes into the manifest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Volume;
use crate::snapshot::{Health, Snapshot, SnapshotProvider};
use crate::target::SnapshotRecord;

/// How often live snapshots are polled.
pub const POLL: Duration = Duration::from_millis(500);

struct Watched {
    snap: Snapshot,
    provider: Arc<dyn SnapshotProvider>,
    volume: Volume,
    record: SnapshotRecord,
    warned: bool,
}

/// Stops a [`Watch`] when dropped; see [`Watch::stop_on_drop`].
pub struct StopOnDrop<'a>(&'a Watch);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The live snapshots of a run.
#[derive(Default)]
pub struct Watch {
    live: Mutex<HashMap<String, Watched>>,
    done: Mutex<Vec<SnapshotRecord>>,
    warnings: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Watch {
    /// Starts watching `snap` of `volume`.
    pub fn add(&self, snap: &Snapshot, provider: Arc<dyn SnapshotProvider>, volume: &Volume) {
        let record = SnapshotRecord {
            name: snap.name.clone(),
            volume: volume.name.clone(),
            peak_used_percent: None,
            extended: 0,
            invalid: None,
            kept_as_base: false,
        };
        let w = Watched {
            snap: snap.clone(),
            provider,
            volume: volume.clone(),
            record,
            warned: false,
        };
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(snap.name.clone(), w);
    }

    /// Checks `name` now; returns why it is invalid, if it is (or was).
    pub fn check(&self, name: &str) -> Option<String> {
        let (snap, provider) = {
            let g = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let w = g.get(name)?;
            (w.snap.clone(), w.provider.clone())
        };
        let h = provider.health(&snap).unwrap_or_else(|e| Health {
            invalid: Some(format!("cannot check: {e}")),
            used_percent: None,
        });
        self.note(name, &h);
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .and_then(|w| w.record.invalid.clone())
    }

    fn note(&self, name: &str, h: &Health) {
        let mut extend = None;
        {
            let mut g = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let Some(w) = g.get_mut(name) else { return };
            if let Some(u) = h.used_percent {
                w.record.peak_used_percent =
                    Some(w.record.peak_used_percent.map_or(u, |p| p.max(u)));
                let opts = w.volume.lvm.as_ref();
                if let Some(o) = opts {
                    if u >= o.warn_percent && !w.warned {
                        w.warned = true;
                        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                            "snapshot {} of volume {} is {u:.1}% full (warn_percent = {}): it may overflow; give it more room",
                            name, w.volume.name, o.warn_percent
                        ));
                    }
                    if o.autoextend_percent.is_some_and(|a| u >= a) && h.invalid.is_none() {
                        extend = Some((w.snap.clone(), w.provider.clone()));
                    }
                }
            }
            if w.record.invalid.is_none() {
                w.record.invalid = h.invalid.clone();
            }
        }
        if let Some((snap, provider)) = extend {
            match provider.extend(&snap, 50.0) {
                Ok(()) => {
                    if let Some(w) = self
                        .live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(name)
                    {
                        w.record.extended += 1;
                    }
                }
                Err(e) => self
                    .warnings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("autoextend of {name} failed: {e}")),
            }
        }
    }

    /// Stops watching `name` (it is about to be removed).
    pub fn remove(&self, name: &str) {
        if let Some(w) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            self.done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(w.record);
        }
    }

    fn live_names(&self) -> Vec<String> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Polls every live snapshot until [`Watch::stop`].
    pub fn run(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let names = self.live_names();
            for n in names {
                self.check(&n);
            }
            let mut waited = Duration::ZERO;
            while waited < POLL && !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                waited += Duration::from_millis(20);
            }
        }
    }

    /// Ends [`Watch::run`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A guard that ends [`Watch::run`] when it is dropped, however the code
    /// holding it ends — a panic included, so a scope waiting for the
    /// watching thread cannot wait forever.
    pub fn stop_on_drop(&self) -> StopOnDrop<'_> {
        StopOnDrop(self)
    }

    /// The records of every snapshot watched, and the warnings.
    pub fn finish(&self) -> (Vec<SnapshotRecord>, Vec<String>) {
        let names = self.live_names();
        for n in names {
            self.remove(&n);
        }
        let mut recs = std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()));
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        (
            recs,
            std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LvmOptions, ProviderKind, SnapshotSize};
    use crate::snapshot::SnapshotError;

    /// Reports a fixed usage; counts extends.
    struct Filling {
        used: Mutex<f64>,
        extends: Mutex<u32>,
    }

    impl SnapshotProvider for Filling {
        fn kind(&self) -> ProviderKind {
            ProviderKind::Lvm
        }
        fn check(&self, _: &Volume, _: usize) -> Result<(), SnapshotError> {
            Ok(())
        }
        fn prepare(&self, _: &Volume) -> Result<(), SnapshotError> {
            Ok(())
        }
        fn exists(&self, _: &Volume, _: &str) -> Result<bool, SnapshotError> {
            unreachable!()
        }
        fn handle(&self, _: &Volume, _: &str) -> Result<Snapshot, SnapshotError> {
            unreachable!()
        }
        fn create(
            &self,
            _: &Volume,
            _: &str,
            _: &crate::sys::Owner,
        ) -> Result<Snapshot, SnapshotError> {
            unreachable!()
        }
        fn extend(&self, _: &Snapshot, percent: f64) -> Result<(), SnapshotError> {
            assert_eq!(percent, 50.0);
            *self.extends.lock().unwrap() += 1;
            *self.used.lock().unwrap() /= 1.5;
            Ok(())
        }
        fn health(&self, _: &Snapshot) -> Result<Health, SnapshotError> {
            let u = *self.used.lock().unwrap();
            Ok(Health {
                invalid: (u >= 100.0).then(|| "overflowed".into()),
                used_percent: Some(u),
            })
        }
        fn remove(&self, _: &Snapshot) -> Result<(), SnapshotError> {
            Ok(())
        }
        fn list(&self, _: &Volume) -> Result<Vec<crate::snapshot::Found>, SnapshotError> {
            Ok(Vec::new())
        }
    }

    fn volume(autoextend: Option<f64>) -> Volume {
        Volume {
            name: "v".into(),
            path: "/v".into(),
            provider: ProviderKind::Lvm,
            snapshot_dir: "/s".into(),
            keep_base: None,
            lvm: Some(LvmOptions {
                lv: None,
                snapshot_size: SnapshotSize::Percent(10.0),
                warn_percent: 80.0,
                autoextend_percent: autoextend,
                thin_max_data_percent: 80.0,
                thin_max_metadata_percent: 80.0,
            }),
        }
    }

    fn snap() -> Snapshot {
        Snapshot {
            name: "ff-1-v".into(),
            volume: "v".into(),
            root: "/s/ff-1-v".into(),
            device: Some("vg/ff-1-v".into()),
            origin: None,
        }
    }

    #[test]
    fn warns_once_extends_past_the_threshold_and_records_the_peak() {
        let p = Arc::new(Filling {
            used: Mutex::new(90.0),
            extends: Mutex::new(0),
        });
        let w = Watch::default();
        w.add(&snap(), p.clone(), &volume(Some(70.0)));
        assert_eq!(w.check("ff-1-v"), None);
        assert_eq!(*p.extends.lock().unwrap(), 1, "grown at 90% >= 70%");
        assert_eq!(
            w.check("ff-1-v"),
            None,
            "60% after growing: no second extend"
        );
        assert_eq!(*p.extends.lock().unwrap(), 1);
        let (recs, warnings) = w.finish();
        assert_eq!(recs[0].peak_used_percent, Some(90.0));
        assert_eq!(recs[0].extended, 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("90.0% full"), "{warnings:?}");
    }

    #[test]
    fn an_overflow_is_remembered_even_if_usage_reads_lower_later() {
        let p = Arc::new(Filling {
            used: Mutex::new(100.0),
            extends: Mutex::new(0),
        });
        let w = Watch::default();
        w.add(&snap(), p.clone(), &volume(None));
        assert_eq!(w.check("ff-1-v").as_deref(), Some("overflowed"));
        *p.used.lock().unwrap() = 5.0;
        assert_eq!(
            w.check("ff-1-v").as_deref(),
            Some("overflowed"),
            "invalid stays invalid"
        );
        assert_eq!(*p.extends.lock().unwrap(), 0, "no autoextend configured");
        let (recs, _) = w.finish();
        assert_eq!(recs[0].invalid.as_deref(), Some("overflowed"));
    }
}
