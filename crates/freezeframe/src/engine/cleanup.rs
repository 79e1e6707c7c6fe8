//! The undo registry: every step that must be undone (a freeze, a snapshot)
//! is registered *before* it is done and marked done after its undo. Whatever
//! is still registered when the run ends — normally, by error or by panic —
//! is undone in reverse order.

use std::sync::{Arc, Mutex};

use crate::config::Container;
use crate::runtime::Runtime;
use crate::snapshot::{Snapshot, SnapshotProvider};

/// One thing to undo.
#[derive(Clone)]
pub enum Undo {
    /// Thaw this container.
    Thaw(Arc<dyn Runtime>, Container),
    /// Remove this snapshot.
    RemoveSnapshot(Arc<dyn SnapshotProvider>, Snapshot),
}

impl Undo {
    fn describe(&self) -> String {
        match self {
            Undo::Thaw(_, c) => format!("thaw container {}", c.id),
            Undo::RemoveSnapshot(_, s) => format!("remove snapshot {}", s.name),
        }
    }

    fn run(&self) -> Result<(), String> {
        match self {
            Undo::Thaw(rt, c) => rt.thaw(c).map_err(|e| e.to_string()),
            Undo::RemoveSnapshot(p, s) => p.remove(s).map_err(|e| e.to_string()),
        }
    }
}

/// Handle of a registered undo step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(u64);

/// The registry. Unwinds on drop.
#[derive(Default)]
pub struct Cleanup {
    items: Mutex<(u64, Vec<(Token, Undo)>)>,
}

impl Cleanup {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `undo` before the step it undoes is performed.
    pub fn register(&self, undo: Undo) -> Token {
        let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let t = Token(g.0);
        g.1.push((t, undo));
        t
    }

    /// Forgets a step whose undo has been done (or that turned out not to
    /// need one).
    pub fn done(&self, token: Token) {
        let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
        g.1.retain(|(t, _)| *t != token);
    }

    /// Runs the undo of `token` now and forgets it if it succeeded.
    pub fn undo_now(&self, token: Token) -> Result<(), String> {
        let undo = {
            let g = self.items.lock().unwrap_or_else(|p| p.into_inner());
            g.1.iter()
                .find(|(t, _)| *t == token)
                .map(|(_, u)| u.clone())
        };
        match undo {
            None => Ok(()),
            Some(u) => {
                u.run()?;
                self.done(token);
                Ok(())
            }
        }
    }

    /// Undoes everything still registered, newest first. Returns the failures.
    pub fn unwind(&self) -> Vec<String> {
        let items = {
            let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut g.1)
        };
        let mut failures = Vec::new();
        for (_, u) in items.into_iter().rev() {
            tracing::warn!(step = %u.describe(), "cleaning up");
            if let Err(e) = u.run() {
                tracing::error!(step = %u.describe(), error = %e, "cleanup failed");
                failures.push(format!("{}: {e}", u.describe()));
            }
        }
        failures
    }

    /// Number of steps still registered.
    pub fn pending(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).1.len()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.unwind();
    }
}
