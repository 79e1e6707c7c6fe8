//! Restoring one container from a repository target: the snapshot's tree is
//! streamed as tar through a pipe into the same safe extractor tar targets
//! use (it refuses hostile paths and never writes outside the target), so
//! memory stays bounded and a full disk is an error, not a panic. The
//! config file and memory dump go beside the folder, as for tar targets.

use std::io::Write;

use super::{Repo, RepoError, Selection};
use crate::archive::extract::extract;
use crate::sys::{Cancel, Faults};
use crate::target::restore::{
    after_entry, check_destination, check_sibling, config_destination, dest_err, sibling,
    write_beside, RestoreError, RestoreRequest, RestoreResult,
};

/// Pipe buffer between the repository reader and the extractor (Linux's
/// default unprivileged maximum, `/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 1 << 20;

/// Restores `req.id` from the repository: the snapshot of run (or id
/// prefix) `req.run`, else the newest complete one; all of it, or the
/// `req.include` paths (only their blobs are read).
pub(super) fn restore(
    repo: &Repo,
    req: &RestoreRequest,
    faults: &Faults,
    cancel: &Cancel,
) -> Result<RestoreResult, RestoreError> {
    let sel = Selection {
        container: &req.id,
        which: req.run.as_deref(),
    };
    // Fail on a wrong id or path before touching the destination.
    let found = repo.find(&sel)?;
    repo.check_includes(&found, &req.include)?;
    let whole = req.include.is_empty();
    let to = &req.to;
    let create = check_destination(req)?;
    let conf_dest = config_destination(to);
    let dump_dest = sibling(to, ".dump");
    // Whether the snapshot holds a config or a dump is known only once it
    // is read: both places must be free before anything is written.
    if whole {
        check_sibling(&conf_dest, req.force)?;
        check_sibling(&dump_dest, req.force)?;
    }
    if create {
        std::fs::create_dir_all(to).map_err(|e| dest_err(to, format!("cannot create: {e}")))?;
    }
    let (reader, writer) =
        std::io::pipe().map_err(|e| dest_err(to, format!("cannot create a pipe: {e}")))?;
    // A larger pipe: fewer hand-offs between the two threads (best effort;
    // the default 64 KiB still works).
    let _ = rustix::pipe::fcntl_setpipe_size(&writer, PIPE_SIZE);
    let snapshot = &found;
    let (streamed, extracted) = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut w = writer;
            let r = repo.stream_tree(snapshot, &mut w, cancel, &req.include);
            let _ = w.flush();
            r
        });
        let extracted = extract(reader, to, &after_entry(faults, cancel));
        // The reader is gone once `extract` returns: a producer still
        // writing gets EPIPE and stops.
        let streamed = producer.join();
        (streamed, extracted)
    });
    let streamed = streamed.map_err(|_| {
        RestoreError::Repository(RepoError::Invalid(
            "the repository reader stopped unexpectedly".into(),
        ))
    })?;
    let (report, restored) = match (extracted, streamed) {
        // The repository could not be read: the extractor then only saw
        // the stream end early; the reader's error names the cause.
        (_, Err(e)) if !e.is_consumer_gone() => return Err(e.into()),
        (Err(e), _) => return Err(e.into()),
        (Ok(_), Err(e)) => return Err(e.into()),
        (Ok(r), Ok(restored)) => (r, restored),
    };
    let mut config = None;
    if let Some(data) = restored.config.as_ref().filter(|_| whole) {
        write_beside(&conf_dest, req.force, |out| {
            out.write_all(data)
                .map_err(|e| dest_err(&conf_dest, e.to_string()))
        })?;
        config = Some(conf_dest);
    }
    let mut dump = None;
    if restored.has_dump && whole {
        write_beside(&dump_dest, req.force, |out| {
            Ok(repo.write_dump(&found, out)?)
        })?;
        dump = Some(dump_dest);
    }
    Ok(RestoreResult {
        run: found.run.clone().unwrap_or_else(|| found.id.clone()),
        partial: found.partial.then(|| found.missing.clone()),
        extract: report,
        config,
        dump,
    })
}
