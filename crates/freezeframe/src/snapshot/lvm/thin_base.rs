//! Thin snapshots kept as bases (DESIGN.md §7, LVM-thin): a snapshot's
//! identity (LV UUID and thin device id), and what changed since the base,
//! read from the pool's metadata through a metadata snapshot held for the
//! few seconds `thin_delta` runs.
//!
//! The metadata snapshot is the pool's, one at a time, and lasts across
//! reboots. Every freezeframe process takes it under an `flock` of one
//! file per pool, held until it is released; the undo of a killed run
//! (journaled first) releases a held one only when it can take that lock,
//! so it never releases another live freezeframe's. A run waits for that
//! lock a bounded time ([`POOL_LOCK_WAIT`]): a holder stuck in `thin_delta`
//! makes the others read changed files whole, not hang.

use std::fs::File;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use super::delta::parse as parse_delta;
use super::report::Lv;
use super::thin_changes::{
    file_changes, metadata_snap_cmd, metadata_snap_held, status_cmd, thin_delta_cmd,
};
use super::{err_cmd, LvmProvider};
use crate::snapshot::{Hold, Snapshot, SnapshotError, SnapshotProvider, VolumeChanges};
use crate::sys::Cmd;
use crate::target::SourceId;

/// How long a run waits, by default, for another freezeframe's hold of a
/// pool's metadata snapshot (`thin_delta` over a large pool takes
/// minutes).
pub(super) const POOL_LOCK_WAIT: Duration = Duration::from_secs(600);
/// How often a waiting run tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// What a thin snapshot's identity starts with (its LV UUID follows, and
/// its thin device id is the generation): never equal to a btrfs UUID.
const LVM_ID_PREFIX: &str = "lvm-thin:";

/// Files named in a run's notes as not mapped (read whole), at most.
const UNMAPPED_NOTES: usize = 5;

/// A thin pool's device-mapper names.
struct Pool {
    /// The pool target (`vg-pool-tpool`), for `dmsetup message`.
    tpool: String,
    /// Its metadata device (`/dev/mapper/vg-pool_tmeta`), for `thin_delta`.
    tmeta: String,
}

/// The metadata snapshot, released on drop (under the pool's lock).
struct Reserved<'a> {
    provider: &'a LvmProvider,
    tpool: &'a str,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let cmd = metadata_snap_cmd(self.tpool, false);
        if let Err(e) = self.provider.runner.run(&cmd) {
            tracing::warn!(error = %e, "could not release the thin pool's metadata snapshot");
        }
    }
}

impl LvmProvider {
    /// The pool `lv` (a thin LV) lives in.
    fn pool_of(&self, volume: &str, lv: &Lv) -> Result<Pool, SnapshotError> {
        let out = self
            .runner
            .run(&super::commands::lvs_all_cmd(&lv.vg))
            .map_err(|e| err_cmd(volume, e))?;
        let all =
            super::report::parse_lvs(&out.stdout).map_err(|reason| SnapshotError::Unsuitable {
                volume: volume.to_owned(),
                path: Default::default(),
                reason,
            })?;
        let dm = |name: &str| {
            all.iter()
                .find(|l| l.name == name)
                .map(|l| l.dm_path.clone())
                .filter(|p| p.starts_with("/dev/mapper/"))
        };
        let unsuitable = |what: &str| SnapshotError::Unsuitable {
            volume: volume.to_owned(),
            path: Default::default(),
            reason: format!("thin pool {}/{}: {what} not found", lv.vg, lv.pool),
        };
        let pool = dm(&lv.pool).ok_or_else(|| unsuitable("its device"))?;
        let tmeta =
            dm(&format!("[{}_tmeta]", lv.pool)).ok_or_else(|| unsuitable("its metadata device"))?;
        Ok(Pool {
            tpool: format!("{}-tpool", &pool["/dev/mapper/".len()..]),
            tmeta,
        })
    }

    /// The lock every freezeframe takes before it reserves `tpool`'s
    /// metadata snapshot: taken at once or not (`wait` none), or within
    /// `wait`; `None` when another process holds it.
    fn pool_lock(
        &self,
        volume: &str,
        tpool: &str,
        wait: Option<Duration>,
    ) -> Result<Option<File>, SnapshotError> {
        if tpool.is_empty() || tpool.contains('/') || tpool.contains('\0') {
            return Err(SnapshotError::NotOurs(format!(
                "{tpool:?} is not a device-mapper name"
            )));
        }
        let path = self.pool_lock_path(tpool);
        let io = |source| SnapshotError::Io {
            volume: volume.to_owned(),
            path: path.clone(),
            source,
        };
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            match flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Some(f)),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => return Err(io(e.into())),
            }
            match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(LOCK_RETRY),
                _ => return Ok(None),
            }
        }
    }

    /// `tpool`'s lock, waited for at most `lock_wait`; after that the
    /// volume is unsuitable for this run (its changed files are read
    /// whole), with who to look at.
    fn pool_lock_waiting(&self, volume: &str, tpool: &str) -> Result<File, SnapshotError> {
        self.pool_lock(volume, tpool, Some(self.lock_wait))?
            .ok_or_else(|| SnapshotError::Unsuitable {
                volume: volume.to_owned(),
                path: self.pool_lock_path(tpool),
                reason: format!(
                    "is locked by another freezeframe, which has held thin pool {tpool}'s \
                     metadata snapshot for over {} s (`fuser -v` on the file names it)",
                    self.lock_wait.as_secs()
                ),
            })
    }

    /// The file `tpool`'s lock is taken on.
    fn pool_lock_path(&self, tpool: &str) -> std::path::PathBuf {
        self.lock_dir.join(format!("freezeframe-{tpool}.lock"))
    }

    /// The live LV of a thin snapshot of ours, or why it cannot be used.
    fn thin_snapshot(&self, snap: &Snapshot) -> Result<Lv, SnapshotError> {
        let lv = self.current(snap)?.ok_or_else(|| {
            SnapshotError::NotOurs(format!("{}: the LV no longer exists", snap.name))
        })?;
        if let Some(why) = Self::foreign(&lv, snap.origin.as_deref()) {
            return Err(SnapshotError::NotOurs(format!("{}: {why}", snap.name)));
        }
        if !lv.is_thin() || lv.thin_id.is_none() || lv.uuid.is_empty() {
            return Err(SnapshotError::NotOurs(format!(
                "{}: not a thin snapshot with a device id",
                snap.name
            )));
        }
        Ok(lv)
    }

    pub(super) fn thin_identity(&self, snap: &Snapshot) -> Result<Option<SourceId>, SnapshotError> {
        if !self.thin {
            return Ok(None);
        }
        let lv = self.thin_snapshot(snap)?;
        Ok(Some(SourceId {
            uuid: format!("{LVM_ID_PREFIX}{}", lv.uuid),
            generation: lv.thin_id.unwrap_or_default(),
        }))
    }

    pub(super) fn thin_hold(&self, new: &Snapshot) -> Result<Option<Hold>, SnapshotError> {
        if !self.thin {
            return Ok(None);
        }
        let lv = self.thin_snapshot(new)?;
        let pool = self.pool_of(&new.volume, &lv)?;
        Ok(Some(Hold { pool: pool.tpool }))
    }

    pub(super) fn thin_release(&self, hold: &Hold) -> Result<(), SnapshotError> {
        // Another freezeframe holds the lock: the snapshot is its own.
        let Some(_lock) = self.pool_lock("-", &hold.pool, None)? else {
            return Ok(());
        };
        let out = self
            .runner
            .run(&status_cmd(&hold.pool))
            .map_err(|e| err_cmd("-", e))?;
        if metadata_snap_held(&out.stdout) == Some(true) {
            self.runner
                .run(&metadata_snap_cmd(&hold.pool, false))
                .map_err(|e| err_cmd("-", e))?;
        }
        Ok(())
    }

    /// The changes from `base` to `new`, both thin snapshots of ours of
    /// one origin in one pool; the base is mounted for the look at its
    /// files if it is not (after a reboot), and unmounted again after.
    /// `held` is called while the pool's metadata snapshot is reserved.
    pub(super) fn thin_changes(
        &self,
        base: &Snapshot,
        new: &Snapshot,
        held: &dyn Fn(),
    ) -> Result<Option<VolumeChanges>, SnapshotError> {
        if !self.thin {
            return Ok(None);
        }
        let (b, n) = (self.thin_snapshot(base)?, self.thin_snapshot(new)?);
        if (b.vg.as_str(), b.pool.as_str(), b.origin.as_str())
            != (n.vg.as_str(), n.pool.as_str(), n.origin.as_str())
        {
            return Err(SnapshotError::NotOurs(format!(
                "{} and {} are not snapshots of one origin in one pool",
                base.name, new.name
            )));
        }
        let pool = self.pool_of(&new.volume, &n)?;
        let (left, right) = (b.thin_id.unwrap_or_default(), n.thin_id.unwrap_or_default());
        let text = {
            let _lock = self.pool_lock_waiting(&new.volume, &pool.tpool)?;
            self.runner
                .run(&metadata_snap_cmd(&pool.tpool, true))
                .map_err(|e| match &e {
                    crate::sys::CommandError::Failed { stderr, .. } if stderr.contains("busy") => {
                        SnapshotError::Unsuitable {
                            volume: new.volume.clone(),
                            path: Default::default(),
                            reason: format!(
                                "thin pool {}'s metadata snapshot is held by another tool \
                                 (thin_ls, thin_delta, another backup); if nothing uses it, \
                                 release it with `dmsetup message {} 0 release_metadata_snap`",
                                pool.tpool, pool.tpool
                            ),
                        }
                    }
                    _ => err_cmd(&new.volume, e),
                })?;
            let _reserved = Reserved {
                provider: self,
                tpool: &pool.tpool,
            };
            held();
            self.runner
                .run(&thin_delta_cmd(&pool.tmeta, left, right))
                .map_err(|e| err_cmd(&new.volume, e))?
                .stdout
        };
        let delta = parse_delta(&text, left, right).map_err(|source| SnapshotError::ThinDelta {
            volume: new.volume.clone(),
            source,
        })?;
        let mounted_here = !self.is_mounted(&base.root);
        if mounted_here {
            self.activate(base)?;
        }
        let walked = file_changes(&base.root, &new.root, &delta);
        if mounted_here {
            self.unmount(base);
        }
        let (entries, unmapped) = walked.map_err(|source| SnapshotError::Io {
            volume: new.volume.clone(),
            path: new.root.clone(),
            source,
        })?;
        let mut notes: Vec<String> = unmapped
            .iter()
            .take(UNMAPPED_NOTES)
            .map(|u| format!("read whole, not mapped: {u}"))
            .collect();
        if unmapped.len() > UNMAPPED_NOTES {
            notes.push(format!(
                "and {} more files not mapped",
                unmapped.len() - UNMAPPED_NOTES
            ));
        }
        Ok(Some(VolumeChanges {
            base_uuid: format!("{LVM_ID_PREFIX}{}", b.uuid),
            uuid: format!("{LVM_ID_PREFIX}{}", n.uuid),
            entries,
            notes,
        }))
    }

    /// Unmounts a snapshot mounted by this process (its LV stays).
    fn unmount(&self, snap: &Snapshot) {
        if let Err(e) = self.runner.run(&Cmd::new("umount").arg(&snap.root)) {
            tracing::warn!(error = %e, snapshot = %snap.name, "could not unmount the base snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::sys::{CommandError, CommandOutput, CommandRunner};

    /// Answers `dmsetup status` with `status`, records every command.
    struct Pool {
        status: String,
        calls: Mutex<Vec<String>>,
    }

    impl CommandRunner for Pool {
        fn run(&self, cmd: &Cmd) -> Result<CommandOutput, CommandError> {
            self.calls.lock().unwrap().push(cmd.to_string());
            let stdout = if cmd.to_string().contains("dmsetup status") {
                self.status.clone()
            } else {
                String::new()
            };
            Ok(CommandOutput {
                stdout,
                stderr: String::new(),
            })
        }
    }

    fn provider(held: bool) -> (Arc<Pool>, LvmProvider, tempfile::TempDir) {
        let root = if held { "71" } else { "-" };
        let fake = Arc::new(Pool {
            status: format!("0 2097152 thin-pool 3 124/1024 1059/16384 {root} rw discard_passdown queue_if_no_space - 256"),
            calls: Mutex::default(),
        });
        let locks = tempfile::tempdir().unwrap();
        let p = LvmProvider::new(fake.clone(), true).with_lock_dir(locks.path().to_owned());
        (fake, p, locks)
    }

    fn releases(fake: &Pool) -> usize {
        fake.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.contains("release_metadata_snap"))
            .count()
    }

    #[test]
    fn a_killed_runs_hold_is_released_only_if_still_held() {
        let hold = Hold {
            pool: "vg-pool-tpool".into(),
        };
        let (fake, p, _locks) = provider(true);
        p.release_hold(&hold).unwrap();
        assert_eq!(releases(&fake), 1);
        let (fake, p, _locks) = provider(false);
        p.release_hold(&hold).unwrap();
        assert_eq!(releases(&fake), 0, "nothing held, nothing released");
    }

    #[test]
    fn a_hold_another_live_freezeframe_has_is_left_alone() {
        let hold = Hold {
            pool: "vg-pool-tpool".into(),
        };
        let (fake, p, locks) = provider(true);
        // Another process's lock: a second open file description.
        let theirs = p.pool_lock("v", &hold.pool, None).unwrap().unwrap();
        p.release_hold(&hold).unwrap();
        assert_eq!(releases(&fake), 0, "{:?}", fake.calls.lock().unwrap());
        drop(theirs);
        p.release_hold(&hold).unwrap();
        assert_eq!(releases(&fake), 1);
        assert!(locks.path().join("freezeframe-vg-pool-tpool.lock").exists());
    }

    #[test]
    fn a_run_waits_a_bounded_time_for_another_freezeframes_pool_lock() {
        let (_, p, _locks) = provider(false);
        let p = p.with_lock_wait(Duration::from_millis(300));
        let theirs = p.pool_lock("v", "vg-pool-tpool", None).unwrap().unwrap();
        assert!(p.pool_lock("v", "vg-pool-tpool", None).unwrap().is_none());
        let t0 = Instant::now();
        let waited = p
            .pool_lock("v", "vg-pool-tpool", Some(p.lock_wait))
            .unwrap();
        assert!(waited.is_none(), "the lock is theirs");
        assert!(
            t0.elapsed() >= p.lock_wait,
            "gave up before the wait was over"
        );
        // What `changes` gets: the volume unsuitable for this run (its
        // changed files read whole), naming the lock file.
        let t0 = Instant::now();
        let why = p.pool_lock_waiting("v", "vg-pool-tpool").unwrap_err();
        assert!(t0.elapsed() >= p.lock_wait);
        assert!(matches!(&why, SnapshotError::Unsuitable { .. }), "{why:?}");
        let why = why.to_string();
        assert!(
            why.contains("freezeframe-vg-pool-tpool.lock") && why.contains("another freezeframe"),
            "{why}"
        );
        // Let go while a run waits: it takes the lock.
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(theirs);
        });
        let ours = p.pool_lock("v", "vg-pool-tpool", Some(Duration::from_secs(30)));
        letting_go.join().unwrap();
        assert!(ours.unwrap().is_some());
    }
}
