//! The [`Runtime`] contract.

use std::time::{Duration, Instant};

use crate::config::{Container, ContainerSpec, Mode};
use crate::runtime::{Quiesced, Runtime};

/// A runtime and one of its containers, running, to put through the
/// contract.
pub struct RuntimeSubject<'a> {
    /// The runtime under test.
    pub runtime: &'a dyn Runtime,
    /// A running container it drives, as the config names it.
    pub spec: ContainerSpec,
    /// A mode it supports for this container.
    pub mode: Mode,
    /// Whether the container is at rest right now, asked of the kernel
    /// (the cgroup's state, the process list), never of the runtime.
    pub at_rest: &'a dyn Fn() -> bool,
}

/// How long a container gets to come to rest in the suite.
const BUDGET: Duration = Duration::from_secs(10);

/// Resumes the container when dropped: a failing suite leaves it running.
struct Resume<'a>(&'a dyn Runtime, &'a Container, &'a Quiesced);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume(self.1, self.2);
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < BUDGET, "contract: {what} within {BUDGET:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the runtime contract on `s`:
///
/// 1. it resolves the container (private area, running) and accepts it;
/// 2. `quiesce_all` brings it to rest within the budget and says when;
/// 3. `resume` lets it run, and resuming a running container is no error;
/// 4. the journaled `handle` alone resumes it (the guardian and `recover`
///    have no config), and resuming by handle twice is no error;
/// 5. a handle it did not write is an error, not a panic or a guess.
pub fn runtime_contract(s: &RuntimeSubject<'_>) {
    let rt = s.runtime;
    let kind = rt.kind();
    assert_eq!(kind, s.spec.runtime, "contract: the runtime's kind");
    assert!(rt.supports(s.mode), "contract: {kind} supports {}", s.mode);
    let r = rt
        .resolve(&s.spec)
        .unwrap_or_else(|e| panic!("contract: {kind} resolves {}: {e}", s.spec.id));
    assert!(r.running, "contract: {kind} sees {} running", s.spec.id);
    assert!(
        r.private.is_dir(),
        "contract: {kind}'s private area {} is a folder",
        r.private.display()
    );
    let ct = Container {
        id: s.spec.id.clone(),
        runtime: kind,
        cgroup: s.spec.cgroup.clone(),
        private: r.private,
        volume: "contract".into(),
        config: r.config,
        running: true,
        exclude: Vec::new(),
    };
    rt.check(&ct)
        .unwrap_or_else(|e| panic!("contract: {kind} accepts {}: {e}", ct.id));
    assert!(!(s.at_rest)(), "contract: {} runs before the suite", ct.id);
    let q = rt
        .plan_quiesce(&ct, s.mode)
        .unwrap_or_else(|e| panic!("contract: {kind} plans {}: {e}", s.mode));
    let _resume = Resume(rt, &ct, &q);

    // 2. At rest, together, within the budget.
    let start = Instant::now();
    let rs = rt.quiesce_all(&[(&ct, &q)], BUDGET);
    let answered = Instant::now();
    assert_eq!(rs.len(), 1, "contract: one answer per container");
    match &rs[0] {
        Ok(at) => {
            let after = at.saturating_duration_since(start);
            assert!(
                after <= BUDGET,
                "contract: at rest after {after:?}, past the budget"
            );
            assert!(
                *at >= start && *at <= answered,
                "contract: the instant at rest is within the call"
            );
        }
        Err(e) => panic!("contract: {kind} brings {} to rest: {e}", ct.id),
    }
    assert!(
        (s.at_rest)(),
        "contract: {kind} said at rest, the kernel says not"
    );

    // 3. Resume, twice.
    rt.resume(&ct, &q)
        .unwrap_or_else(|e| panic!("contract: {kind} resumes: {e}"));
    wait_until("running again after resume", || !(s.at_rest)());
    rt.resume(&ct, &q)
        .unwrap_or_else(|e| panic!("contract: resuming a running container is no error: {e}"));

    // 4. The journaled handle alone.
    rt.quiesce(&ct, &q, BUDGET)
        .unwrap_or_else(|e| panic!("contract: {kind} brings it to rest again: {e}"));
    assert!((s.at_rest)(), "contract: at rest again");
    let handle = rt
        .handle(&ct, &q)
        .unwrap_or_else(|e| panic!("contract: {kind} gives a handle: {e}"));
    rt.resume_handle(&handle)
        .unwrap_or_else(|e| panic!("contract: {kind} resumes from handle `{handle}`: {e}"));
    wait_until("running again after resume_handle", || !(s.at_rest)());
    rt.resume_handle(&handle)
        .unwrap_or_else(|e| panic!("contract: resuming by handle twice is no error: {e}"));

    // 5. A handle it never wrote.
    for bad in ["", "no-such-handle-format", "v9:/nonexistent\n"] {
        assert!(
            rt.resume_handle(bad).is_err(),
            "contract: {kind} refuses the handle {bad:?} it did not write"
        );
    }
    assert!(!(s.at_rest)(), "contract: {} runs after the suite", ct.id);
}
