//! What changed between two read-only snapshots of one volume, as the
//! kernel compares them: `btrfs send --no-data -p BASE NEW` into a scratch
//! file, then parsed (`sys::send_stream`). Nothing is received anywhere.

use std::path::{Path, PathBuf};

use crate::sys::send_stream::{self, SendChanges, StreamError};
use crate::sys::{Cmd, CommandError, CommandRunner};

/// Why the changes could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// `btrfs send` failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The scratch file could not be made or read.
    #[error("send stream scratch file in {}: {source}", dir.display())]
    Scratch {
        /// Where it was to be.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stream is not one to trust.
    #[error("{}: {source}", new.display())]
    Stream {
        /// The newer snapshot.
        new: PathBuf,
        /// What is wrong with its stream.
        source: StreamError,
    },
}

/// The `btrfs` command writing the metadata-only stream from `base` to
/// `new` into `out`.
fn send_cmd(base: &Path, new: &Path, out: &Path) -> Cmd {
    Cmd::new("btrfs")
        .arg("-q")
        .arg("send")
        .arg("--no-data")
        .arg("-p")
        .arg(base)
        .arg("-f")
        .arg(out)
        .arg(new)
}

/// The changes from the read-only snapshot `base` to the read-only
/// snapshot `new` (of the same volume), through a scratch file in
/// `scratch` that is removed afterwards.
pub fn send_changes(
    runner: &dyn CommandRunner,
    base: &Path,
    new: &Path,
    scratch: &Path,
) -> Result<SendChanges, ChangesError> {
    let io = |source| ChangesError::Scratch {
        dir: scratch.to_owned(),
        source,
    };
    let file = tempfile::Builder::new()
        .prefix(".freezeframe-send-")
        .tempfile_in(scratch)
        .map_err(io)?;
    runner.run(&send_cmd(base, new, file.path()))?;
    let bytes = std::fs::read(file.path()).map_err(io)?;
    send_stream::parse(&bytes).map_err(|source| ChangesError::Stream {
        new: new.to_owned(),
        source,
    })
}
