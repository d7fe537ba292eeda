//! The admin API's hold on the queue, for whoever runs pixdrop (see `admin.rs` for who that is):
//!
//! - `GET /admin/queue`: counts per state across every instance, workers, whether paused; jobs
//!   finished per state and failed per error code since the queue began (the dashboard's
//!   throughput is their change); the repeatable tasks with their runs.
//! - `GET /admin/instances`: each instance's heartbeat and worker slots, with the jobs they hold.
//! - `GET /admin/jobs?state=failed&offset=0&limit=50`: finished jobs (completed, failed or
//!   cancelled), newest first, with their owner and error.
//! - `POST /admin/jobs/{id}/retry`, `DELETE /admin/jobs/{id}`: one job, whoever owns it.
//! - `POST /admin/jobs/retry-failed`: the failed jobs back in the queue, oldest first, up to
//!   `RETRY_ALL_MAX` a call; the answer says how many are failed still.
//! - `POST /admin/clean?state=completed&older_than_secs=3600`: finished jobs removed by age, with
//!   their files, as their retention would.
//! - `POST /admin/pause`, `POST /admin/resume`: every instance's workers stop claiming (what they
//!   hold they finish), or start again.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::admin::Admin;
use super::jobs::{job_id, no_job};
use super::problem::Problem;
use super::view::JobView;
use crate::queue::{FINISHED_STATES, JobState, ResubmitOutcome};

/// Jobs in one page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// `GET /admin/queue`.
pub async fn counts(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let stats = state.queue.stats().await?;
    let mut answer = serde_json::to_value(stats.counts).map_err(Problem::internal)?;
    answer["finished_total"] = json!(stats.finished);
    answer["failed_by_code_total"] = json!(stats.failed_by_code);
    answer["repeating"] = json!(state.queue.repeating().await?);
    Ok(HttpResponse::Ok().json(answer))
}

/// `GET /admin/instances`: every instance with registered workers, its heartbeat and what each
/// worker slot holds.
pub async fn instances(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(json!({ "instances": state.queue.instances().await? })))
}

/// A finished job as an administrator sees it: whose it is, and the job as its owner sees it.
#[derive(Serialize)]
struct AdminJob {
    /// The owner's subject; null for an anonymous upload.
    subject: Option<String>,
    #[serde(flatten)]
    job: JobView,
}

fn finished_state(value: &str) -> Result<JobState, Problem> {
    value
        .parse::<JobState>()
        .ok()
        .filter(|s| FINISHED_STATES.contains(s))
        .ok_or_else(|| {
            Problem::bad_request(
                "bad-query",
                format!("state={value:?} is not one of completed, failed, cancelled"),
            )
        })
}

fn number(key: &str, value: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, Problem> {
    value
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            Problem::bad_request(
                "bad-query",
                format!(
                    "{key}={value:?} must be a number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// `GET /admin/jobs?state=failed&offset=0&limit=50`.
pub async fn finished(
    _: Admin,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let mut wanted = JobState::Failed;
    let mut offset = 0;
    let mut limit = DEFAULT_PAGE;
    for (key, value) in query.iter() {
        match key.as_str() {
            "state" => wanted = finished_state(value)?,
            "offset" => offset = number(key, value, 0..=1_000_000)? as usize,
            "limit" => limit = number(key, value, 1..=MAX_PAGE as u64)? as usize,
            other => {
                return Err(Problem::bad_request(
                    "bad-query",
                    format!("unknown parameter {other:?}: use state, offset and limit"),
                ));
            }
        }
    }
    let page = state.queue.finished_jobs(wanted, offset, limit).await?;
    let jobs: Vec<AdminJob> = page
        .jobs
        .iter()
        .map(|record| AdminJob {
            subject: record.subject.name().map(str::to_owned),
            job: JobView::from_record(record, &state.media),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "state": wanted,
        "total": page.total,
        "offset": offset,
        "jobs": jobs,
    })))
}

/// `POST /admin/jobs/{id}/retry`: `202`; `409` unless failed or cancelled; `404`.
pub async fn retry(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    match state.queue.resubmit_any(&id).await? {
        ResubmitOutcome::Queued => {
            tracing::info!(job_id = %id, "job retried by an administrator");
            Ok(HttpResponse::Accepted()
                .insert_header(("Location", format!("/jobs/{id}")))
                .json(json!({ "id": id, "state": "queued" })))
        }
        ResubmitOutcome::NotResubmittable(s) => Err(Problem::conflict(
            "not-retryable",
            format!("job {id} is {s}; only failed or cancelled jobs can be retried"),
        )),
        ResubmitOutcome::NotFound => Err(no_job(id)),
    }
}

/// `DELETE /admin/jobs/{id}`: `200` with the state it was in; `404`.
pub async fn delete(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    match state.cleanup.delete_any(&id).await? {
        Some(removed) => {
            tracing::warn!(job_id = %id, was = %removed.state, "job deleted by an administrator");
            Ok(HttpResponse::Ok().json(json!({ "id": id, "deleted": true, "was": removed.state })))
        }
        None => Err(no_job(id)),
    }
}

/// `POST /admin/jobs/retry-failed`.
pub async fn retry_failed(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let retried = state.queue.retry_all_failed().await?;
    let remaining = state.queue.counts().await?.failed;
    tracing::info!(
        jobs = retried,
        remaining,
        "failed jobs retried by an administrator"
    );
    Ok(HttpResponse::Ok().json(json!({ "retried": retried, "failed": remaining })))
}

/// `POST /admin/clean?state=completed&older_than_secs=3600` (both required).
pub async fn clean(
    _: Admin,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let (mut wanted, mut age) = (None, None);
    for (key, value) in query.iter() {
        match key.as_str() {
            "state" => wanted = Some(finished_state(value)?),
            "older_than_secs" => age = Some(number(key, value, 0..=100 * 365 * 86_400)?),
            other => {
                return Err(Problem::bad_request(
                    "bad-query",
                    format!("unknown parameter {other:?}: use state and older_than_secs"),
                ));
            }
        }
    }
    let (Some(wanted), Some(age)) = (wanted, age) else {
        return Err(Problem::bad_request(
            "bad-query",
            "both state (completed, failed or cancelled) and older_than_secs are needed",
        ));
    };
    let removed = state
        .cleanup
        .clean(wanted, Duration::from_secs(age))
        .await?;
    tracing::warn!(state = %wanted, older_than_secs = age, jobs = removed, "finished jobs cleaned by an administrator");
    Ok(HttpResponse::Ok().json(json!({ "state": wanted, "removed": removed })))
}

/// `POST /admin/pause`.
pub async fn pause(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    state.queue.pause().await?;
    tracing::warn!("processing paused by an administrator");
    Ok(HttpResponse::Ok().json(json!({ "paused": true })))
}

/// `POST /admin/resume`.
pub async fn resume(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    state.queue.resume().await?;
    tracing::warn!("processing resumed by an administrator");
    Ok(HttpResponse::Ok().json(json!({ "paused": false })))
}
