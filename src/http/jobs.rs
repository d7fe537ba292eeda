//! `GET /jobs/{id}`, `DELETE /jobs/{id}` (cancel) and `POST /jobs/{id}/retry`. `JobStatus` is the
//! one shape a job has for clients; the websocket's snapshots use it too.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::problem::Problem;
use crate::queue::{CancelOutcome, ErrorInfo, JobId, JobRecord, JobState, ResubmitOutcome};
use crate::worker::ImageJob;

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub id: JobId,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub progress: u8,
    /// What the worker is doing now ("decoded", "wrote thumb"), while active.
    pub step: Option<String>,
    pub error: Option<ErrorInfo>,
    pub original: Original,
    pub variants: Vec<Value>,
    pub created_at: String,
    pub updated_at: String,
    /// Counts the job's changes: of two states of one job, the higher version is the later.
    pub version: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Original {
    pub filename: Option<String>,
    pub bytes: u64,
    pub format: Option<String>,
    /// Known once the image is decoded.
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub sha256: Option<String>,
    pub url: Option<String>,
}

impl JobStatus {
    pub fn from_record(record: JobRecord) -> Self {
        let job: Option<ImageJob> = serde_json::from_value(record.payload).ok();
        let result = record.result.unwrap_or(Value::Null);
        let decoded = &result["original"];
        let original = Original {
            filename: job.as_ref().and_then(|j| j.filename.clone()),
            bytes: job.as_ref().map_or(0, |j| j.bytes),
            format: job.as_ref().map(|j| j.format.name().to_owned()),
            width: decoded["width"].as_u64(),
            height: decoded["height"].as_u64(),
            sha256: job.as_ref().map(|j| j.sha256.clone()),
            url: job.as_ref().map(|j| format!("/media/{}", j.original)),
        };
        let variants = match &result["variants"] {
            Value::Array(variants) => variants.clone(),
            _ => Vec::new(),
        };
        Self {
            id: record.id,
            state: record.state,
            attempts: record.attempts,
            max_attempts: record.max_attempts,
            progress: record.progress,
            step: record.step,
            error: record.error,
            original,
            variants,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            version: record.version,
        }
    }
}

pub(crate) fn rfc3339(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Parses the path's id; anything but a job id is simply not found.
fn job_id(raw: &str) -> Result<JobId, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found(format!("no job {raw:?}")))
}

async fn status_of(state: &AppState, id: &JobId) -> Result<JobStatus, Problem> {
    let record = state
        .queue
        .job(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no job {id} (unknown, or expired)")))?;
    Ok(JobStatus::from_record(record))
}

pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    Ok(HttpResponse::Ok().json(status_of(&state, &id).await?))
}

pub async fn cancel(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    match state.queue.cancel(&id).await? {
        CancelOutcome::Cancelled { .. } => {
            Ok(HttpResponse::Ok().json(status_of(&state, &id).await?))
        }
        CancelOutcome::Finished(s) => Err(Problem::conflict(
            "already-finished",
            format!(
                "job {id} is already {s}; only queued, retrying or active jobs can be cancelled"
            ),
        )),
        CancelOutcome::NotFound => Err(Problem::not_found(format!("no job {id}"))),
    }
}

pub async fn retry(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    match state.queue.resubmit(&id).await? {
        ResubmitOutcome::Queued => Ok(HttpResponse::Accepted()
            .insert_header(("Location", format!("/jobs/{id}")))
            .json(status_of(&state, &id).await?)),
        ResubmitOutcome::NotResubmittable(s) => Err(Problem::conflict(
            "not-retryable",
            format!("job {id} is {s}; only failed or cancelled jobs can be retried"),
        )),
        ResubmitOutcome::NotFound => Err(Problem::not_found(format!("no job {id}"))),
    }
}
