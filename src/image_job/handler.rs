//! `ImageHandler`: what a worker does with an upload. It runs the pipeline on the stored original,
//! off the async executor and bounded to the machine's cores, forwards each step as progress, and
//! answers with an [`ImageResult`] naming the variants by storage key. Pipeline errors keep their
//! code; whether a retry can help is the pipeline's call (`is_permanent`).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use super::contract::{DecodedOriginal, ImageJob, ImageResult, StoredVariant};
use crate::pipeline::{self, Limits, Step, VariantSpec};
use crate::queue::{Claimed, Handler, JobError, Progress};
use crate::storage::Storage;

pub struct ImageHandler {
    storage: Storage,
    specs: Arc<Vec<VariantSpec>>,
    limits: Limits,
    /// One permit per core: decoding and encoding are CPU-bound, and more of them at once than
    /// cores only adds memory and latency.
    cpu: Arc<Semaphore>,
}

impl ImageHandler {
    pub fn new(storage: Storage, specs: Vec<VariantSpec>, limits: Limits) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            storage,
            specs: Arc::new(specs),
            limits,
            cpu: Arc::new(Semaphore::new(cores)),
        }
    }
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

impl Handler for ImageHandler {
    async fn handle(&self, job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        let payload: ImageJob = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(
                "invalid-job",
                format!("the job's payload is not an image job: {e}"),
            )
        })?;
        let storage = self.storage.clone();
        let mut writer = self.storage.variant_writer(&job.id);
        let (specs, limits) = (self.specs.clone(), self.limits);
        let _permit = self
            .cpu
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::transient("shutting-down", "the worker is stopping"))?;

        let (steps_tx, mut steps) = mpsc::unbounded_channel();
        let work = tokio::task::spawn_blocking(move || {
            let source = storage.open_original(&payload.original).map_err(|e| {
                // Server paths are not for clients: keep them in the log only.
                tracing::warn!(error = %e, "cannot read the stored original");
                JobError::transient("io-error", "the stored upload could not be read")
            })?;
            let processed = pipeline::process(source, &specs, &limits, &mut writer, &mut |step| {
                let _ = steps_tx.send(step);
            })
            .map_err(|e| {
                if e.is_permanent() {
                    JobError::permanent(e.code(), e.to_string())
                } else {
                    tracing::warn!(error = %e, "transient pipeline failure");
                    JobError::transient(e.code(), "a storage error interrupted processing")
                }
            })?;
            Ok::<_, JobError>((processed, writer))
        });
        // Report each step while the pipeline runs; the channel closes when it is done.
        while let Some(step) = steps.recv().await {
            let (percent, name) = progress_of(&step);
            if let Err(e) = progress.report(percent, &name).await {
                tracing::debug!(error = %e, "progress not recorded");
            }
        }
        let (processed, writer) = work.await.map_err(|e| {
            JobError::transient("worker-crashed", format!("image processing crashed: {e}"))
        })??;

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
            })
            .collect();
        let result = ImageResult {
            original: DecodedOriginal {
                format: processed.original.format,
                width: processed.original.width,
                height: processed.original.height,
            },
            variants,
        };
        serde_json::to_value(&result)
            .map_err(|e| JobError::permanent("internal", format!("cannot record the result: {e}")))
    }
}
