//! What one run of the pipeline may use, and how its caller stops it: a memory grant the decode
//! must fit in, and a stop flag checked between steps (before decoding, before each variant's
//! resize and before its encode). A step under way runs to its end; the run stops at the next.

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
}

impl Control {
    /// No memory bound beyond the limits, never stopped: for tools, tests and benchmarks.
    pub fn unlimited() -> Self {
        Self {
            stop: StopFlag::new(),
            memory_bytes: u64::MAX,
        }
    }
}
