//! The quick pre-walk that sizes a progress bar: the bytes of regular
//! files below a root, with the container's excludes applied, from
//! metadata alone (nothing is read). Unreadable entries count as nothing.

use std::io;
use std::path::Path;

use super::exclude::walk_excluding;
use super::walk::{Entry, Kind, Visitor};
use crate::config::Excludes;

struct Sum(u64);

impl Visitor for Sum {
    fn visit(&mut self, e: &Entry<'_>) -> io::Result<bool> {
        if e.meta.kind == Kind::File {
            self.0 += e.meta.size;
        }
        Ok(e.meta.is_dir() && !(e.rel != b"." && e.meta.mount_root))
    }

    fn problem(&mut self, _: &[u8], _: &str, _: &io::Error) {}
}

/// The bytes of regular files below `root`, excluded entries left out.
pub fn tree_size(root: &Path, excludes: &Excludes) -> io::Result<u64> {
    let mut sum = Sum(0);
    walk_excluding(root, &mut sum, excludes).0?;
    Ok(sum.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_file_bytes_minus_excluded() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/cache")).unwrap();
        std::fs::write(d.path().join("a/x"), vec![0; 1000]).unwrap();
        std::fs::write(d.path().join("a/cache/y"), vec![0; 500]).unwrap();
        std::os::unix::fs::symlink("x", d.path().join("a/l")).unwrap();
        assert_eq!(tree_size(d.path(), &Excludes::none()).unwrap(), 1500);
        let ex = Excludes::new(&["cache/".to_string()]).unwrap();
        assert_eq!(tree_size(d.path(), &ex).unwrap(), 1000);
    }
}
