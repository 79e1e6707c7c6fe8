//! Bringing the containers of one freeze window to rest together: grouped
//! by runtime, each group at once ([`Runtime::quiesce_all`]: for cgroups,
//! every freeze written first, then all waited on), the groups side by
//! side. The last container asked is not held longer than the first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Container;
use crate::runtime::{Quiesced, Runtime, RuntimeError};

/// One container to bring to rest, with its runtime and plan.
pub(super) type ToRest = (Container, Arc<dyn Runtime>, Quiesced);

/// Brings all of `batch` to rest within `budget`; per container, in order,
/// the instant it was seen at rest (never before it was), or why it was
/// not (it is then running).
pub(super) fn rest_all(batch: &[ToRest], budget: Duration) -> Vec<Result<Instant, RuntimeError>> {
    // Groups of the same runtime, in first-seen order.
    let mut groups: Vec<(Arc<dyn Runtime>, Vec<usize>)> = Vec::new();
    for (i, (_, rt, _)) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, rt)) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((rt.clone(), vec![i])),
        }
    }
    let run = |(rt, idx): &(Arc<dyn Runtime>, Vec<usize>)| {
        let items: Vec<(&Container, &Quiesced)> =
            idx.iter().map(|&i| (&batch[i].0, &batch[i].2)).collect();
        rt.quiesce_all(&items, budget)
    };
    let results: Vec<Vec<Result<Instant, RuntimeError>>> = if groups.len() == 1 {
        vec![run(&groups[0])]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = groups.iter().map(|g| s.spawn(move || run(g))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut out: Vec<Option<Result<Instant, RuntimeError>>> =
        (0..batch.len()).map(|_| None).collect();
    for ((_, idx), rs) in groups.iter().zip(results) {
        for (&i, r) in idx.iter().zip(rs) {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.expect("each runtime answers for each of its containers"))
        .collect()
}
