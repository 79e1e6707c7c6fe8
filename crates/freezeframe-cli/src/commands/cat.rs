//! `freezeframe cat`: one file of a backup to standard output.

use std::io::Write;

use anyhow::Result;
use freezeframe::{BrowsePath, Config, Which};

use crate::cli::CatArgs;
use crate::exit::{self, UsageError};

/// Writes the file's bytes to stdout.
pub fn run(config: &Config, args: &CatArgs) -> Result<u8> {
    let path = BrowsePath::parse(&args.path).map_err(|e| UsageError(e.to_string()))?;
    if path.is_root() {
        return Err(UsageError("cat needs the path of a file, not the root".into()).into());
    }
    let target = crate::system::target(config)?;
    let backup = target.find(&Which {
        container: &args.id,
        run: args.run.as_deref(),
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    target.cat(&backup, &path, &mut out)?;
    match out.flush() {
        // The reader went away (`| head`): not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r?,
    }
    Ok(exit::OK)
}
