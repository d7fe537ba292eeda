//! `JobView`: the one shape a job has for clients. `GET /jobs/{id}` and the websocket's
//! `snapshot` send it whole; the websocket's `event` sends the same shape without the upload's
//! fields (`original`, `priority`, `created_at`), which never change and which an event does not carry. A
//! client keeps its view of a job by merging each event's fields over the snapshot's.
//!
//! Storage keys become URLs here, and only here (signed, when media is private: see `media.rs`).

use serde::{Deserialize, Serialize};

use super::media::MediaAccess;
use crate::image_job::{ImageJob, ImageResult};
use crate::queue::{ErrorInfo, JobEvent, JobId, JobRecord, JobState, Priority};

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: JobId,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub progress: u8,
    /// What the worker is doing now ("decoded", "wrote thumb"), while active.
    pub step: Option<String>,
    pub error: Option<ErrorInfo>,
    /// Every variant once the job completed; empty before.
    pub variants: Vec<VariantView>,
    /// While retrying: when the next attempt is due; otherwise null.
    pub due_at: Option<String>,
    /// What was worked around in making the variants (a colour profile that could not be used).
    pub warnings: Vec<String>,
    /// Counts the job's changes: of two views of one job, the higher version is the later.
    pub version: u64,
    pub updated_at: String,
    /// Present in a job status and a snapshot; left out of events.
    #[serde(flatten)]
    pub upload: Option<UploadView>,
}

/// What was uploaded, fixed at enqueue (the decoded size once known).
#[derive(Debug, Clone, Serialize)]
pub struct UploadView {
    pub original: OriginalView,
    /// The line it waits in: `high` (claimed first) or `normal`.
    pub priority: Priority,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OriginalView {
    pub filename: Option<String>,
    pub bytes: u64,
    pub format: Option<String>,
    /// Known once the image is decoded.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sha256: Option<String>,
    /// Null when originals are not served (`media.originals = "none"`).
    pub url: Option<String>,
    /// The embedded colour profile's name; known once decoded.
    pub color_profile: Option<String>,
    /// Whether the variants' colours were converted from that profile to sRGB.
    pub color_converted: Option<bool>,
    /// Whether the original's EXIF holds a GPS position (the variants carry no EXIF); known once
    /// decoded.
    pub has_location: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantView {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub url: String,
    /// Whether it is an animated WebP.
    pub animated: bool,
}

impl JobView {
    /// The whole view, as `GET /jobs/{id}` and a snapshot give it.
    pub fn from_record(record: &JobRecord, media: &MediaAccess) -> Self {
        let job = ImageJob::deserialize(&record.payload).ok();
        let result = parse_result(record.result.as_ref());
        let decoded = result.as_ref().map(|r| &r.original);
        let original = OriginalView {
            filename: job.as_ref().and_then(|j| j.filename.clone()),
            bytes: job.as_ref().map_or(0, |j| j.bytes),
            format: job.as_ref().map(|j| j.format.name().to_owned()),
            width: decoded.map(|d| d.width),
            height: decoded.map(|d| d.height),
            sha256: job.as_ref().map(|j| j.sha256.clone()),
            url: job.as_ref().and_then(|j| media.original_url(&j.original)),
            color_profile: decoded.and_then(|d| d.colour_profile.clone()),
            color_converted: decoded.map(|d| d.colour_converted),
            has_location: decoded.map(|d| d.has_location),
        };
        Self {
            upload: Some(UploadView {
                original,
                priority: record.priority,
                created_at: rfc3339(record.created_at),
            }),
            ..Self::changes(&record.event(), result, media)
        }
    }

    /// The view an event gives: everything but the upload's fields.
    pub fn from_event(event: &JobEvent, media: &MediaAccess) -> Self {
        Self::changes(event, parse_result(event.result.as_ref()), media)
    }

    fn changes(event: &JobEvent, result: Option<ImageResult>, media: &MediaAccess) -> Self {
        let warnings = result
            .as_ref()
            .map(|r| r.warnings.clone())
            .unwrap_or_default();
        let variants = result
            .map(|r| {
                r.variants
                    .into_iter()
                    .map(|v| VariantView {
                        url: media.url(&v.key),
                        name: v.name,
                        width: v.width,
                        height: v.height,
                        bytes: v.bytes,
                        animated: v.animated,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            id: event.id,
            state: event.state,
            attempts: event.attempts,
            max_attempts: event.max_attempts,
            progress: event.progress,
            step: event.step.clone(),
            error: event.error.clone(),
            variants,
            due_at: event.due_at.map(rfc3339),
            warnings,
            version: event.version,
            updated_at: rfc3339(event.updated_at),
            upload: None,
        }
    }
}

/// A result this version cannot read shows as no variants rather than an error. Read in place:
/// every socket watching a job does this for each of its events.
fn parse_result(result: Option<&serde_json::Value>) -> Option<ImageResult> {
    result.and_then(|r| ImageResult::deserialize(r).ok())
}

pub fn rfc3339(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}
