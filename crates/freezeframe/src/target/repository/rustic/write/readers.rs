//! Files read side by side: the walk hands each file to be read to one of
//! [`READERS`] readers and goes on; a reader cuts its file (in order, with
//! its own buffer) and hands the chunks to the workers. On a fresh
//! snapshot nothing is in the page cache, and one file read at a time
//! leaves the cores idle while the kernel fetches the next block.

use std::io::Read;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::chunks::{PendingId, Submitter};
use super::cutter::Cutter;

/// Files read at once.
pub(crate) const READERS: usize = 2;

/// A file's chunks once its reader has cut it all; `Err`: it could not be
/// read to the end (the source has recorded why) and is left out.
pub(crate) type PendingFile = Receiver<Result<Vec<PendingId>, ()>>;

struct Job {
    reader: Box<dyn Read + Send>,
    reply: Sender<Result<Vec<PendingId>, ()>>,
}

/// The running readers.
pub(crate) struct Readers {
    jobs: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts the readers, handing chunks on through `submit`.
    pub(crate) fn start(submit: &Submitter) -> Self {
        let (jobs, inbox) = bounded::<Job>(READERS);
        let handles = (0..READERS)
            .map(|_| {
                let (inbox, submit) = (inbox.clone(), submit.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    for job in inbox {
                        let mut chunks = Vec::new();
                        let mut failed = false;
                        for chunk in Cutter::new(job.reader, &mut buf) {
                            match chunk {
                                Ok(data) => chunks.push(submit.submit(data)),
                                Err(_) => {
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        let _ = job.reply.send(if failed { Err(()) } else { Ok(chunks) });
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
        let (reply, file) = bounded(1);
        if let Some(jobs) = &self.jobs {
            // Fails only once the readers are gone: `file` then says so.
            let _ = jobs.send(Job { reader, reply });
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

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop();
    }
}
