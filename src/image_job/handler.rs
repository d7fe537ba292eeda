//! The image job: what a worker does with an upload. It runs the pipeline on the stored original,
//! off the async executor and bounded to the machine's cores, forwards each step as progress, and
//! answers with the variants' sizes and URLs. Pipeline errors keep their code; whether a retry can
//! help is the pipeline's call (`is_permanent`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::pipeline::{self, ImageFormat, Limits, Step, VariantSpec};
use crate::queue::{Claimed, Handler, JobError, Progress};
use crate::storage::Storage;

/// A job's payload, written by the upload handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageJob {
    /// The original's storage key (generated, never from the client).
    pub original: String,
    /// The client's filename, kept only as data.
    pub filename: Option<String>,
    pub bytes: u64,
    pub sha256: String,
    pub format: ImageFormat,
}

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

impl Handler for ImageHandler {
    async fn handle(&self, job: &Claimed, progress: &Progress) -> Result<Value, JobError> {
        let payload: ImageJob = serde_json::from_value(job.payload.clone()).map_err(|e| {
            JobError::permanent(
                "invalid-job",
                format!("the job's payload is not an image job: {e}"),
            )
        })?;
        let source = self.storage.path(&payload.original);
        let out_dir = self.storage.variants_dir(&job.id);
        let (specs, limits) = (self.specs.clone(), self.limits);
        let _permit = self
            .cpu
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::transient("shutting-down", "the worker is stopping"))?;

        let (steps_tx, mut steps) = mpsc::unbounded_channel();
        let work = tokio::task::spawn_blocking(move || {
            pipeline::process(&source, &out_dir, &specs, &limits, &mut |step| {
                let _ = steps_tx.send(step);
            })
        });
        // Report each step while the pipeline runs; the channel closes when it is done.
        while let Some(step) = steps.recv().await {
            let (percent, name) = match step {
                Step::Decoded { .. } => (10, "decoded".to_owned()),
                Step::VariantWritten { name, index, total } => {
                    let done = (index + 1) * 90 / total.max(1);
                    (
                        10 + u8::try_from(done).unwrap_or(90),
                        format!("wrote {name}"),
                    )
                }
            };
            if let Err(e) = progress.report(percent, &name).await {
                tracing::debug!(error = %e, "progress not recorded");
            }
        }
        let processed = work
            .await
            .map_err(|e| {
                JobError::transient("worker-crashed", format!("image processing crashed: {e}"))
            })?
            .map_err(|e| {
                if e.is_permanent() {
                    JobError::permanent(e.code(), e.to_string())
                } else {
                    // Server paths are not for clients: keep them in the log only.
                    tracing::warn!(error = %e, "transient pipeline failure");
                    JobError::transient(e.code(), "a storage error interrupted processing")
                }
            })?;

        let variants: Vec<Value> = processed
            .variants
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "width": v.width,
                    "height": v.height,
                    "bytes": v.bytes,
                    "url": format!("/media/{}", Storage::variant_key(&job.id, &v.name)),
                })
            })
            .collect();
        Ok(json!({
            "original": {
                "format": processed.original.format,
                "width": processed.original.width,
                "height": processed.original.height,
            },
            "variants": variants,
        }))
    }
}
