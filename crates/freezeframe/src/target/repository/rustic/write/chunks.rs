//! File content, chunk by chunk, on every core: the walk cuts files into
//! chunks (sequential per file) and hands each to a pool of workers that
//! hash it, skip it when the repository or this backup has it already,
//! and compress and seal it; one packer thread fills data packs, and
//! uploaders write the full ones side by side (a local backend syncs every
//! file: one writer would hold the whole pipeline at each sync). Bounded
//! queues between the stages bound the memory: at most `2 × workers`
//! chunks wait, `workers` sealed blobs queue for the packer, one pack is
//! open and [`UPLOADERS`] + 1 full ones wait or are being written.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::index::Known;
use super::pack::{sha256, BlobKind, FinishedPack, Hash, PackBuilder, SealedBlob, WrittenPack};
use super::store::Store;
use super::WriteError;

/// A data pack is written once it holds this much (restic's default).
pub(crate) const DATA_PACK_SIZE: usize = 16 << 20;
/// Packs written at once.
pub(crate) const UPLOADERS: usize = 2;

/// The id of a chunk: handed to the workers (known once they have it),
/// or a blob the repository holds already.
pub(crate) enum PendingId {
    /// Being hashed and stored.
    Waiting(Receiver<Result<Hash, WriteError>>),
    /// Known (a parent's blob reused).
    Ready(Hash),
}

impl PendingId {
    /// Waits for the chunk's id (or why it could not be stored).
    pub(crate) fn wait(self) -> Result<Hash, WriteError> {
        match self {
            Self::Ready(id) => Ok(id),
            Self::Waiting(rx) => rx
                .recv()
                .unwrap_or_else(|_| Err(WriteError::Stopped("a chunk worker stopped".into()))),
        }
    }
}

struct Job {
    data: Vec<u8>,
    reply: Sender<Result<Hash, WriteError>>,
}

/// What the workers added to the repository.
#[derive(Debug, Default)]
pub(crate) struct Added {
    /// New data blobs.
    pub blobs: AtomicU64,
    /// Their plain bytes.
    pub bytes: AtomicU64,
    /// Their stored (compressed, sealed) bytes.
    pub stored: AtomicU64,
}

/// Hands chunks to the workers; cloned by every reader.
#[derive(Clone)]
pub(crate) struct Submitter(Sender<Job>);

impl Submitter {
    /// Hands one chunk to the workers (waits while they are all busy).
    pub(crate) fn submit(&self, data: Vec<u8>) -> PendingId {
        let (reply, rx) = bounded(1);
        // A send fails only once the workers are gone: the reply's sender
        // is dropped with the job and `wait` says so.
        let _ = self.0.send(Job { data, reply });
        PendingId::Waiting(rx)
    }
}

/// The running pool and packer.
pub(crate) struct DataPipe {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    packer: Option<JoinHandle<Result<Vec<WrittenPack>, WriteError>>>,
    abort: Arc<AtomicBool>,
    /// Set once a pack could not be written.
    broken: Arc<AtomicBool>,
    /// What was added so far.
    pub added: Arc<Added>,
}

impl DataPipe {
    /// Starts `workers` workers and the packer, writing into `store` and
    /// skipping what `known` holds.
    pub(crate) fn start(store: &Store, known: &Arc<RwLock<Known>>, workers: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, job_rx) = bounded::<Job>(2 * workers);
        let (blob_tx, blob_rx) = bounded::<SealedBlob>(workers);
        let claimed = Arc::new(Mutex::new(HashSet::<Hash>::new()));
        let added = Arc::new(Added::default());
        let abort = Arc::new(AtomicBool::new(false));
        let handles = (0..workers)
            .map(|_| {
                let (rx, tx) = (job_rx.clone(), blob_tx.clone());
                let (store, known) = (store.clone(), known.clone());
                let (claimed, added) = (claimed.clone(), added.clone());
                std::thread::spawn(move || {
                    for job in rx {
                        let r = store_chunk(&store, &known, &claimed, &added, &tx, &job.data);
                        let _ = job.reply.send(r);
                    }
                })
            })
            .collect();
        drop(blob_tx);
        let broken = Arc::new(AtomicBool::new(false));
        let (pstore, pabort, pbroken) = (store.clone(), abort.clone(), broken.clone());
        let packer = std::thread::spawn(move || {
            let r = pack_all(&pstore, &blob_rx, &pabort);
            if r.is_err() {
                pbroken.store(true, Ordering::SeqCst);
            }
            r
        });
        Self {
            jobs: Some(jobs),
            workers: handles,
            packer: Some(packer),
            abort,
            broken,
            added,
        }
    }

    /// Whether a pack could not be written (`finish` says why).
    pub(crate) fn broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// A handle to hand chunks on with (drop every one before `finish`).
    pub(crate) fn submitter(&self) -> Submitter {
        Submitter(self.jobs.clone().expect("a running pipe"))
    }

    /// Waits for every chunk to be stored and the last pack to be
    /// written; returns the packs written.
    pub(crate) fn finish(mut self) -> Result<Vec<WrittenPack>, WriteError> {
        self.stop()
    }

    /// Stops without writing the pack still open (a cancelled backup).
    pub(crate) fn abort(mut self) {
        self.abort.store(true, Ordering::SeqCst);
        let _ = self.stop();
    }

    fn stop(&mut self) -> Result<Vec<WrittenPack>, WriteError> {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.packer.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(WriteError::Stopped("the pack writer panicked".into())),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for DataPipe {
    fn drop(&mut self) {
        if self.packer.is_some() {
            self.abort.store(true, Ordering::SeqCst);
            let _ = self.stop();
        }
    }
}

/// One chunk: its id; sealed and queued for the packer when new.
fn store_chunk(
    store: &Store,
    known: &RwLock<Known>,
    claimed: &Mutex<HashSet<Hash>>,
    added: &Added,
    packer: &Sender<SealedBlob>,
    data: &[u8],
) -> Result<Hash, WriteError> {
    let id = sha256(data);
    let stored = known
        .read()
        .map(|k| k.has(BlobKind::Data, &id))
        .unwrap_or(false);
    if stored || !claimed.lock().map(|mut c| c.insert(id)).unwrap_or(true) {
        return Ok(id);
    }
    let blob = store.seal_blob(id, BlobKind::Data, data)?;
    added.blobs.fetch_add(1, Ordering::Relaxed);
    added.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    added
        .stored
        .fetch_add(blob.sealed.len() as u64, Ordering::Relaxed);
    packer
        .send(blob)
        .map_err(|_| WriteError::Stopped("the pack writer stopped".into()))?;
    Ok(id)
}

/// The packer: fills packs from `blobs`, hands each to the uploaders when
/// full and the last one at the end (unless aborted).
fn pack_all(
    store: &Store,
    blobs: &Receiver<SealedBlob>,
    abort: &AtomicBool,
) -> Result<Vec<WrittenPack>, WriteError> {
    let (full, queue) = bounded::<FinishedPack>(1);
    let uploaders: Vec<JoinHandle<Result<Vec<WrittenPack>, WriteError>>> = (0..UPLOADERS)
        .map(|_| {
            let (queue, store) = (queue.clone(), store.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                for pack in queue {
                    done.push(store.upload(pack)?);
                }
                Ok(done)
            })
        })
        .collect();
    drop(queue);
    let packed = fill(store, blobs, abort, &full);
    drop(full);
    let mut written = Vec::new();
    let mut failed = None;
    for u in uploaders {
        match u.join() {
            Ok(Ok(w)) => written.extend(w),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(_) => {
                failed = failed.or(Some(WriteError::Stopped("a pack writer panicked".into())))
            }
        }
    }
    // An upload's own error says more than "the uploaders stopped".
    match (failed, packed) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(written),
    }
}

/// Fills packs from `blobs` and queues each full one on `full`.
fn fill(
    store: &Store,
    blobs: &Receiver<SealedBlob>,
    abort: &AtomicBool,
    full: &Sender<FinishedPack>,
) -> Result<(), WriteError> {
    let stopped = || WriteError::Stopped("the pack writers stopped".into());
    let mut pack = PackBuilder::default();
    for blob in blobs {
        pack.add(blob);
        if pack.len() >= DATA_PACK_SIZE {
            let done = std::mem::take(&mut pack).finish(store.sealer())?;
            full.send(done).map_err(|_| stopped())?;
        }
    }
    if !pack.is_empty() && !abort.load(Ordering::SeqCst) {
        full.send(pack.finish(store.sealer())?)
            .map_err(|_| stopped())?;
    }
    Ok(())
}
