//! Block-parallel compression: the input is cut into fixed-size blocks, each
//! compressed into a complete, independent stream by a pool of threads, and
//! the streams are written in order. Concatenated bzip2 streams and gzip
//! members are valid files for `bzip2 -d`, `gzip -d` and GNU tar (the pbzip2
//! and pigz approach). Memory is bounded: at most `2 × threads` blocks are in
//! flight.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

/// Compresses one block into one complete stream.
pub type BlockCodec = Arc<dyn Fn(&[u8]) -> io::Result<Vec<u8>> + Send + Sync>;

type Job = (Vec<u8>, Sender<io::Result<Vec<u8>>>);

/// A writer compressing blocks in parallel, in order.
pub struct BlockParallelWriter<W: Write> {
    inner: Option<W>,
    block_size: usize,
    buf: Vec<u8>,
    jobs: Option<Sender<Job>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> BlockParallelWriter<W> {
    /// Compresses into `inner` with `threads` workers and blocks of
    /// `block_size` bytes.
    pub fn new(inner: W, codec: BlockCodec, threads: usize, block_size: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = bounded::<Job>(threads);
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                let codec = codec.clone();
                std::thread::spawn(move || {
                    for (block, reply) in rx.iter() {
                        // The receiver may be gone after an error: ignore.
                        let _ = reply.send(codec(&block));
                    }
                })
            })
            .collect();
        Self {
            inner: Some(inner),
            block_size,
            buf: Vec::with_capacity(block_size),
            jobs: Some(tx),
            pending: VecDeque::new(),
            max_pending: threads * 2,
            workers,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(self.block_size));
        let (tx, rx) = bounded(1);
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("compressor already finished"))?
            .send((block, tx))
            .map_err(|_| io::Error::other("compression workers stopped"))?;
        self.pending.push_back(rx);
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx
                .recv()
                .map_err(|_| io::Error::other("compression worker died"))??;
            self.inner
                .as_mut()
                .ok_or_else(|| io::Error::other("compressor already finished"))?
                .write_all(&out)?;
        }
        Ok(())
    }

    /// Compresses what is buffered, writes every block and returns the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit()?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.shutdown();
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("compressor already finished"))?;
        inner.flush()?;
        Ok(inner)
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Write for BlockParallelWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = self.block_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.block_size {
                self.submit()?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for BlockParallelWriter<W> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
