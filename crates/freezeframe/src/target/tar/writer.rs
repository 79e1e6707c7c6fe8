//! Writing one container into a tar target's run folder: the archive under
//! a temporary name while the snapshot is read, then — once the snapshot
//! proved valid to the end — renamed into place, with the memory dump and
//! the config file beside it.

use crate::sys::ratelimit::{Limited, RateLimit};
use std::sync::Arc;

use crate::archive::{create_archive, ArchiveOptions, Written as Archived};
use crate::sys::atomic::{self, AtomicFile};
use crate::target::layout::{archive_name, config_name, dump_name};
use crate::target::manifest::{FileKind, FileRecord};
use crate::target::{BackupWriter, ContainerJob, PendingBackup, TargetError, Written};

/// Writes archives with `opts`.
pub(super) struct TarWriter {
    pub(super) opts: ArchiveOptions,
    /// `bwlimit`, shared by every container of the run.
    limit: Arc<RateLimit>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> TargetError {
    move |source| TargetError::Io { what, source }
}

impl BackupWriter for TarWriter {
    fn write(&self, job: &ContainerJob<'_>) -> Result<Box<dyn PendingBackup>, TargetError> {
        let aname = archive_name(job.id, self.opts.compression);
        let dest = job.run_dir.join(&aname);
        let mut af =
            AtomicFile::create(&dest).map_err(io(format!("creating {}", dest.display())))?;
        let (_, archived) = create_archive(
            job.source,
            Limited::new(af.file(), self.limit.clone()),
            &self.opts,
            job.excludes,
            job.progress,
        )
        .map_err(io(format!(
            "archiving {} into {}",
            job.source.display(),
            dest.display()
        )))?;
        Ok(Box::new(Pending {
            archive: af,
            name: aname,
            archived,
            job: OwnedJob {
                id: job.id.clone(),
                run_dir: job.run_dir.to_owned(),
                config: job.config.map(Into::into),
                dump: job.dump.map(Into::into),
            },
        }))
    }

    fn hold(&self, held: bool) {
        self.limit.hold(held);
    }
}

impl TarWriter {
    /// A writer for one run.
    pub(super) fn new(opts: ArchiveOptions) -> Arc<Self> {
        Arc::new(Self {
            limit: RateLimit::new(opts.bwlimit),
            opts,
        })
    }
}

/// What of the job the commit still needs.
struct OwnedJob {
    id: crate::config::ContainerId,
    run_dir: std::path::PathBuf,
    config: Option<std::path::PathBuf>,
    dump: Option<std::path::PathBuf>,
}

/// An archive under its temporary name.
struct Pending {
    archive: AtomicFile,
    name: String,
    archived: Archived,
    job: OwnedJob,
}

impl PendingBackup for Pending {
    fn commit(self: Box<Self>) -> Result<Written, TargetError> {
        let Pending {
            archive,
            name,
            archived,
            job,
        } = *self;
        let dest = job.run_dir.join(&name);
        archive
            .commit()
            .map_err(io(format!("writing {}", dest.display())))?;
        let mut files = vec![FileRecord {
            name,
            kind: FileKind::Archive,
            size: archived.size,
            blake3: archived.blake3,
        }];
        if let Some(dump) = &job.dump {
            files.push(copy_dump(dump, &job)?);
        }
        if let Some(cfg) = &job.config {
            let data =
                std::fs::read(cfg).map_err(io(format!("reading config file {}", cfg.display())))?;
            let cname = config_name(&job.id);
            let cdest = job.run_dir.join(&cname);
            atomic::write(&cdest, &data).map_err(io(format!("writing {}", cdest.display())))?;
            files.push(FileRecord {
                name: cname,
                kind: FileKind::Config,
                size: data.len() as u64,
                blake3: blake3::hash(&data).to_hex().to_string(),
            });
        }
        Ok(Written {
            bytes_out: files.iter().map(|f| f.size).sum(),
            files,
            tree: archived.tree,
            repository: None,
        })
    }

    fn discard(self: Box<Self>) -> Result<String, TargetError> {
        // Dropping the temporary file removes it.
        Ok("the archive was discarded".into())
    }
}

/// Copies the memory dump into the run; the runtime's copy is ours to
/// remove once the run holds it.
fn copy_dump(dump: &std::path::Path, job: &OwnedJob) -> Result<FileRecord, TargetError> {
    let dname = dump_name(&job.id);
    let ddest = job.run_dir.join(&dname);
    let mut af = AtomicFile::create(&ddest).map_err(io(format!("creating {}", ddest.display())))?;
    let mut src =
        std::fs::File::open(dump).map_err(io(format!("reading memory dump {}", dump.display())))?;
    let mut h = crate::archive::hashing::HashingWriter::new(af.file());
    std::io::copy(&mut src, &mut h)
        .map_err(io(format!("copying memory dump {}", dump.display())))?;
    let (_, blake3, size) = h.finish();
    af.commit()
        .map_err(io(format!("writing {}", ddest.display())))?;
    let _ = std::fs::remove_file(dump);
    Ok(FileRecord {
        name: dname,
        kind: FileKind::Dump,
        size,
        blake3,
    })
}
