//! What one run of the pipeline may use, and how its caller stops it: a memory grant the decode
//! must fit in, cores it may borrow while they are idle, and a stop flag checked between steps
//! (before decoding, before each variant's resize, before its encode and before it is handed
//! over) and polled inside each WebP encode, the longest step, which it aborts. A decode or a
//! resize under way runs to its end; the run stops at the next check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::PipelineError;

/// Raised by the caller (a timeout, a cancelled job) to stop a run. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop at its next step.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for a C callback that polls it (libwebp's progress hook).
    pub(crate) fn as_atomic(&self) -> &AtomicBool {
        &self.0
    }

    /// `Err(Stopped)` once stopped: the check between two steps.
    pub(crate) fn check(&self) -> Result<(), PipelineError> {
        if self.is_stopped() {
            Err(PipelineError::Stopped)
        } else {
            Ok(())
        }
    }
}

/// A run's allowance.
#[derive(Debug, Clone)]
pub struct Control {
    pub stop: StopFlag,
    /// The memory granted for decoding and rendering (see [`super::Probe::memory_bytes`]); an
    /// image that needs more is refused before its pixels are allocated.
    pub memory_bytes: u64,
    /// Where the run borrows a core for each variant it encodes beside its own thread.
    pub spare_cores: SpareCores,
}

impl Control {
    /// No memory bound beyond the limits, never stopped, a core for every variant: for tools,
    /// tests and benchmarks.
    pub fn unlimited() -> Self {
        Self {
            stop: StopFlag::new(),
            memory_bytes: u64::MAX,
            spare_cores: SpareCores::always(),
        }
    }
}

/// Lends a run cores beyond its own while they are idle, so one photo alone uses the machine
/// while a busy machine runs each photo on one core (no more threads than cores either way).
#[derive(Clone)]
pub struct SpareCores(Option<Arc<dyn Fn() -> Option<CoreLoan> + Send + Sync>>);

/// One borrowed core, given back when dropped.
pub struct CoreLoan {
    _held: Box<dyn Send>,
}

impl CoreLoan {
    /// A loan that lasts as long as `held` (a semaphore permit, say) is kept.
    pub fn new(held: impl Send + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl SpareCores {
    /// Never lends: every step runs on the caller's thread.
    pub fn none() -> Self {
        Self(None)
    }

    /// Always lends.
    pub fn always() -> Self {
        Self::from_fn(|| Some(CoreLoan::new(())))
    }

    /// Lends whatever `borrow` hands out; `None` means no core is idle now.
    pub fn from_fn(borrow: impl Fn() -> Option<CoreLoan> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(borrow)))
    }

    /// A core, if one is idle.
    pub(crate) fn borrow(&self) -> Option<CoreLoan> {
        self.0.as_ref().and_then(|borrow| borrow())
    }
}

impl std::fmt::Debug for SpareCores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SpareCores(lends)"
        } else {
            "SpareCores(none)"
        })
    }
}

impl std::fmt::Debug for CoreLoan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoreLoan")
    }
}
