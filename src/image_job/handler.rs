//! `ImageHandler`: what a worker does with an upload. It reads the original's header, waits for
//! the memory its decode needs and for a core, runs the pipeline off the async executor, forwards
//! each step as progress, and answers with an [`ImageResult`] naming the variants by storage key.
//!
//! The CPU permit and the memory grant are moved into the blocking work, so they are held exactly
//! as long as it runs, even when the job's future is dropped (a timeout, a shutdown). Dropping the
//! future also raises the pipeline's stop flag, as does a lost lease (the job was cancelled or
//! reaped): the pipeline then stops at its next step instead of running to its end.
//!
//! Pipeline errors keep their code; whether a retry can help is the pipeline's call
//! (`is_permanent`). A decoder that panics fails the job for good with a generic reason: the same
//! file would crash it again, and the panic's text is not for clients.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::contract::{DecodedOriginal, ImageJob, ImageResult, StoredVariant};
use crate::pipeline::{
    self, Control, CoreLoan, Limits, PipelineError, SizeLimit, SpareCores, Step, StopFlag,
    VariantSpec,
};
use crate::queue::{Claimed, ErrorCode, Handler, JobError, JobId, Progress};
use crate::storage::{Storage, StorageKey};

/// The memory budget is counted in KiB, so a `u32` of permits covers terabytes.
const BUDGET_UNIT: u64 = 1024;

pub struct ImageHandler {
    storage: Storage,
    specs: Arc<Vec<VariantSpec>>,
    limits: Limits,
    /// One permit per core: decoding and encoding are CPU-bound, and more of them at once than
    /// cores only adds memory and latency.
    cpu: Arc<Semaphore>,
    /// `pipeline.memory_budget_bytes`, in `BUDGET_UNIT`s: big images wait for room.
    memory: Arc<Semaphore>,
    memory_units: u32,
    /// Names the settings the variants are made with (see [`settings_fingerprint`]).
    fingerprint: String,
}

impl ImageHandler {
    pub fn new(storage: Storage, specs: Vec<VariantSpec>, limits: Limits) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_units =
            u32::try_from(limits.memory_budget_bytes / BUDGET_UNIT).unwrap_or(u32::MAX);
        Self {
            fingerprint: settings_fingerprint(&specs, &limits),
            storage,
            specs: Arc::new(specs),
            limits,
            cpu: Arc::new(Semaphore::new(cores)),
            memory: Arc::new(Semaphore::new(memory_units as usize)),
            memory_units,
        }
    }

    /// Lends a job the cores no other job holds, one permit of `cpu` each, so a photo alone
    /// encodes its variants side by side while a full queue keeps one job to a core.
    fn spare_cores(&self) -> SpareCores {
        let cpu = self.cpu.clone();
        SpareCores::from_fn(move || cpu.clone().try_acquire_owned().ok().map(CoreLoan::new))
    }

    /// Links the variants made before from the same bytes with the same settings into `job`'s
    /// directory, and describes them as this job's; `None` when there are none (or they cannot
    /// be used: then the job makes its own).
    async fn reuse_made(&self, job: &JobId, sha256: &str) -> Option<Value> {
        let (storage, specs, id) = (self.storage.clone(), self.specs.clone(), *job);
        let (sha, fingerprint) = (sha256.to_owned(), self.fingerprint.clone());
        let found = tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = specs.iter().map(VariantSpec::name).collect();
            storage.reuse_made(&sha, &fingerprint, &id, &names)
        })
        .await;
        let description = match found {
            Ok(Ok(Some(description))) => description,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot reuse variants made before; making them");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reusing variants made before failed; making them");
                return None;
            }
        };
        let mut result = match serde_json::from_slice::<ImageResult>(&description) {
            Ok(result) => result,
            Err(e) => {
                tracing::warn!(error = %e, "variants made before are undescribed; making them");
                return None;
            }
        };
        for variant in &mut result.variants {
            variant.key = StorageKey::variant(job, &variant.name);
        }
        serde_json::to_value(&result).ok()
    }

    /// Keeps `job`'s variants for later uploads of the same bytes. A failure costs only that
    /// reuse, so it is logged, not raised.
    async fn keep_made(&self, job: &JobId, sha256: &str, result: &ImageResult) {
        let Ok(description) = serde_json::to_vec(result) else {
            return;
        };
        let (storage, specs, id) = (self.storage.clone(), self.specs.clone(), *job);
        let (sha, fingerprint) = (sha256.to_owned(), self.fingerprint.clone());
        let kept = tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = specs.iter().map(VariantSpec::name).collect();
            storage.keep_made(&sha, &fingerprint, &id, &names, &description)
        })
        .await;
        if !matches!(kept, Ok(Ok(()))) {
            tracing::warn!(?kept, "cannot keep the variants for reuse");
        }
    }

    /// Reads the original's header on the blocking pool (it is file I/O, and cheap).
    async fn probe(&self, original: &StorageKey) -> Result<pipeline::Probe, JobError> {
        let (storage, key) = (self.storage.clone(), original.clone());
        let (specs, limits) = (self.specs.clone(), self.limits);
        run_blocking(move || {
            let source = open_original(&storage, &key)?;
            pipeline::probe(source, &limits, &specs).map_err(job_error)
        })
        .await
    }
}

/// Raises the stop flag when dropped: a job future dropped mid-run (timeout, shutdown) stops its
/// pipeline at the next step.
struct StopOnDrop(StopFlag);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Handler for ImageHandler {
    async fn handle(&self, job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        let payload = ImageJob::deserialize(&job.payload).map_err(|e| {
            JobError::permanent(
                "invalid-job",
                format!("the job's payload is not an image job: {e}"),
            )
        })?;
        // The same bytes made with the same settings before: their variants, linked, not remade.
        let sha256 = payload.sha256.clone();
        if let Some(result) = self.reuse_made(&job.id, &sha256).await {
            return Ok(result);
        }
        let stop = StopFlag::new();
        let _stop_on_drop = StopOnDrop(stop.clone());

        let probe = self.probe(&payload.original).await?;
        let units = probe.memory_bytes.div_ceil(BUDGET_UNIT);
        let Some(units) = u32::try_from(units)
            .ok()
            .filter(|u| *u <= self.memory_units)
        else {
            return Err(job_error(PipelineError::TooLarge {
                width: probe.width,
                height: probe.height,
                limit: SizeLimit::Memory,
            }));
        };
        let stopping = || JobError::transient("shutting-down", "the worker is stopping");
        let memory = self
            .memory
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| stopping())?;
        let cpu = self
            .cpu
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| stopping())?;

        let storage = self.storage.clone();
        let mut writer = self.storage.variant_writer(&job.id);
        let (specs, limits) = (self.specs.clone(), self.limits);
        let control = Control {
            stop: stop.clone(),
            memory_bytes: u64::from(units) * BUDGET_UNIT,
            spare_cores: self.spare_cores(),
        };
        let (steps_tx, mut steps) = mpsc::unbounded_channel();
        let work = run_blocking(move || {
            // Held for exactly as long as the work runs.
            let _held = (cpu, memory);
            let source = open_original(&storage, &payload.original)?;
            let processed = pipeline::process(
                source,
                &specs,
                &limits,
                &control,
                &mut writer,
                &mut |step| {
                    // Waits for the report to be recorded: a cancel it brings back is then seen
                    // by the pipeline's next stop check, before anything more is written.
                    let (recorded, wait) = oneshot::channel();
                    if steps_tx.send((step, recorded)).is_ok() {
                        let _ = wait.blocking_recv();
                    }
                },
            )
            .map_err(job_error)?;
            Ok((processed, writer))
        });
        // Report each step while the pipeline runs; the channel closes when it is done.
        while let Some((step, recorded)) = steps.recv().await {
            let (percent, name) = progress_of(&step);
            match progress.report(percent, &name).await {
                Ok(true) => {}
                // Cancelled, or recovered by another instance: whatever we make is discarded.
                Ok(false) => stop.stop(),
                Err(e) => tracing::debug!(error = %e, "progress not recorded"),
            }
            let _ = recorded.send(());
        }
        let (processed, writer) = work.await?;

        let variants = processed
            .variants
            .into_iter()
            .zip(writer.written())
            .map(|(v, key)| StoredVariant {
                name: v.name,
                width: v.width,
                height: v.height,
                bytes: v.bytes,
                key: key.clone(),
                animated: v.animated,
            })
            .collect();
        let original = processed.original;
        let result = ImageResult {
            original: DecodedOriginal {
                format: original.format,
                width: original.width,
                height: original.height,
                colour_profile: original.colour.profile,
                colour_converted: original.colour.converted,
                has_location: original.has_location,
            },
            variants,
            warnings: original.warnings,
        };
        self.keep_made(&job.id, &sha256, &result).await;
        serde_json::to_value(&result)
            .map_err(|e| JobError::permanent("internal", format!("cannot record the result: {e}")))
    }
}

/// What decides a job's outcome besides the upload's bytes: the specs, the limits (an image over
/// the size limits fails; an animation over the frame limits keeps only its first frame; the
/// memory budget only delays) and the pipeline's output version, hashed to 16 hex digits.
/// Variants kept under another fingerprint are never reused.
fn settings_fingerprint(specs: &[VariantSpec], limits: &Limits) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(pipeline::OUTPUT_VERSION.to_be_bytes());
    hasher.update(serde_json::to_vec(specs).unwrap_or_default());
    hasher.update(limits.max_pixels.to_be_bytes());
    hasher.update(limits.max_width.to_be_bytes());
    hasher.update(limits.max_height.to_be_bytes());
    hasher.update(limits.max_frames.to_be_bytes());
    hasher.update(limits.max_animation_pixels.to_be_bytes());
    hex::encode(&hasher.finalize()[..8])
}

/// Where progress stands after `step`: 10% once decoded, the other 90% shared by the variants.
fn progress_of(step: &Step) -> (u8, String) {
    match step {
        Step::Decoded { .. } => (10, "decoded".to_owned()),
        Step::VariantWritten { name, index, total } => {
            let done = (index + 1) * 90 / (*total).max(1);
            (
                10 + u8::try_from(done).unwrap_or(90),
                format!("wrote {name}"),
            )
        }
    }
}

fn open_original(storage: &Storage, key: &StorageKey) -> Result<std::fs::File, JobError> {
    storage.open_original(key).map_err(|e| {
        // Server paths are not for clients: keep them in the log only.
        tracing::warn!(error = %e, "cannot read the stored original");
        JobError::transient("io-error", "the stored upload could not be read")
    })
}

/// Every code an image job's failure may carry besides the queue's own: the pipeline's
/// (`PipelineError::code`; `encode-failed` is retried only when the encoder ran out of memory) and
/// this handler's.
pub const ERROR_CODES: &[ErrorCode] = &[
    ErrorCode::not_retried("unsupported-format"),
    ErrorCode::not_retried("corrupt-image"),
    ErrorCode::not_retried("truncated-image"),
    ErrorCode::not_retried("image-too-large"),
    ErrorCode::not_retried("encode-failed"),
    ErrorCode::retried("io-error"),
    ErrorCode::retried("stopped"),
    ErrorCode::not_retried("decoder-crashed"),
    ErrorCode::retried("worker-crashed"),
    ErrorCode::not_retried("invalid-job"),
    ErrorCode::not_retried("internal"),
    ErrorCode::retried("shutting-down"),
];

/// Starts `work` on the blocking pool at once (not when first polled) and resolves to its result.
/// A panic in it (a decoder's, on a hostile file) fails the job for good: the same bytes would
/// panic again.
fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> impl Future<Output = Result<T, JobError>> {
    let running = tokio::task::spawn_blocking(work);
    async move { joined(running.await) }
}

fn joined<T>(ran: Result<Result<T, JobError>, tokio::task::JoinError>) -> Result<T, JobError> {
    match ran {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            tracing::error!(error = %e, "image processing panicked");
            Err(JobError::permanent(
                "decoder-crashed",
                "this file made the image decoder fail; it cannot be processed",
            ))
        }
        Err(e) => Err(JobError::transient(
            "worker-crashed",
            format!("image processing was cut short: {e}"),
        )),
    }
}

/// A pipeline error as the job's failure.
fn job_error(e: PipelineError) -> JobError {
    if e.is_permanent() {
        JobError::permanent(e.code(), e.to_string())
    } else {
        tracing::warn!(error = %e, "transient pipeline failure");
        let detail = match e {
            PipelineError::Stopped => "processing was stopped",
            _ => "a storage error interrupted processing",
        };
        JobError::transient(e.code(), detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_panics_fails_the_job_for_good_without_the_panic_text() {
        // Proves a decoder panic is neither retried nor shown to the client.
        let err = run_blocking::<()>(|| panic!("index out of bounds in some decoder"))
            .await
            .unwrap_err();
        assert_eq!(err.code, "decoder-crashed");
        assert_eq!(err.kind, crate::queue::ErrorKind::Permanent);
        assert!(!err.detail.contains("index"), "{}", err.detail);
    }

    #[tokio::test]
    async fn blocking_work_starts_before_its_result_is_awaited() {
        // Proves progress can stream while the work runs: the handler awaits steps first.
        let (tx, rx) = std::sync::mpsc::channel();
        let running = run_blocking(move || {
            tx.send(()).unwrap();
            Ok(())
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("started without being polled");
        running.await.unwrap();
    }
}
