//! Files read side by side: the walk hands each file to be read to one of
//! [`READERS`] readers and goes on; a reader cuts its file (in order, with
//! its own buffer) and hands the chunks to the workers. On a fresh
//! snapshot nothing is in the page cache, and one file read at a time
//! leaves the cores idle while the kernel fetches the next block. A file
//! whose changed ranges are known is cut only around them (`resync`).

use std::io::{self, Read};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::chunks::{PendingId, Submitter};
use super::cutter::{Bounds, Cutter};
use super::resync::{recut, ParentChunk, Piece, ReadAt};

/// Files read at once.
pub(crate) const READERS: usize = 2;

/// A file's chunks once its reader has cut it all; `Err`: it could not be
/// read to the end (the source has recorded why) and is left out.
pub(crate) type PendingFile = Receiver<Result<Vec<PendingId>, ()>>;

/// A file to cut around its changes: its length, the parent's chunks
/// and the changed ranges.
pub(crate) struct Around {
    /// The file's length now.
    pub len: u64,
    /// The parent snapshot's blob list of it.
    pub parent: Vec<ParentChunk>,
    /// The ranges that differ from the parent's.
    pub changed: Vec<(u64, u64)>,
}

enum Work {
    Whole(Box<dyn Read + Send>),
    Around(Box<dyn ReadAt + Send>, Around),
}

struct Job {
    work: Work,
    reply: Sender<Result<Vec<PendingId>, ()>>,
}

/// The running readers.
pub(crate) struct Readers {
    jobs: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts the readers, cutting with `bounds` and handing chunks on
    /// through `submit`.
    pub(crate) fn start(submit: &Submitter, bounds: Bounds) -> Self {
        let (jobs, inbox) = bounded::<Job>(READERS);
        let handles = (0..READERS)
            .map(|_| {
                let (inbox, submit) = (inbox.clone(), submit.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    for job in inbox {
                        let chunks = match job.work {
                            Work::Whole(r) => whole(r, &mut buf, bounds, &submit),
                            Work::Around(r, a) => around(&*r, &a, bounds, &submit),
                        };
                        let _ = job.reply.send(chunks);
                    }
                })
            })
            .collect();
        Self {
            jobs: Some(jobs),
            handles,
        }
    }

    /// Hands one file to a reader (waits while all are busy).
    pub(crate) fn read(&self, reader: Box<dyn Read + Send>) -> PendingFile {
        self.hand(Work::Whole(reader))
    }

    /// Hands one file to a reader to cut around its changes.
    pub(crate) fn read_around(&self, reader: Box<dyn ReadAt + Send>, a: Around) -> PendingFile {
        self.hand(Work::Around(reader, a))
    }

    fn hand(&self, work: Work) -> PendingFile {
        let (reply, file) = bounded(1);
        if let Some(jobs) = &self.jobs {
            // Fails only once the readers are gone: `file` then says so.
            let _ = jobs.send(Job { work, reply });
        }
        file
    }

    /// Waits for every file handed on to be cut.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A whole file cut; `Err` once a read failed (the source recorded it).
fn whole(
    r: Box<dyn Read + Send>,
    buf: &mut Vec<u8>,
    bounds: Bounds,
    submit: &Submitter,
) -> Result<Vec<PendingId>, ()> {
    let mut chunks = Vec::new();
    for chunk in Cutter::new(r, buf, bounds) {
        chunks.push(submit.submit(chunk.map_err(|_| ())?));
    }
    Ok(chunks)
}

/// A file cut around its changes, the parent's blobs elsewhere.
fn around(
    r: &dyn ReadAt,
    a: &Around,
    bounds: Bounds,
    submit: &Submitter,
) -> Result<Vec<PendingId>, ()> {
    let mut chunks = Vec::new();
    recut::<_, io::Error>(r, a.len, &a.parent, &a.changed, bounds, |p| {
        chunks.push(match p {
            Piece::Reused(id) => PendingId::Ready(id),
            Piece::Cut(data) => submit.submit(data),
        });
        Ok(())
    })
    .map_err(|_| ())?;
    Ok(chunks)
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop();
    }
}
