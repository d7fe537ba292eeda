//! The caller's jobs: `GET /jobs` (a page of them, newest first), `GET /jobs/{id}`,
//! `DELETE /jobs/{id}` (cancel) and `POST /jobs/{id}/retry`, each answering with [`JobView`]s;
//! and `GET /me`, who the caller is. A job of another subject answers exactly as an id that never
//! existed: the same status, code and words.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::caller::Caller;
use super::problem::Problem;
use super::view::JobView;
use crate::auth::Authenticator;
use crate::queue::{CancelOutcome, JobId, JobRecord, JobState, ResubmitOutcome};

/// The one answer for a job the caller cannot see: unknown, expired, or someone else's.
pub(super) fn no_job(raw: impl std::fmt::Display) -> Problem {
    Problem::not_found(format!("no job {raw} (unknown, or expired)"))
}

/// Parses the path's id; anything but a job id is simply not found.
pub(super) fn job_id(raw: &str) -> Result<JobId, Problem> {
    raw.parse().map_err(|_| no_job(format!("{raw:?}")))
}

/// The job's record, if the caller may see it.
async fn record_of(state: &AppState, caller: &Caller, id: &JobId) -> Result<JobRecord, Problem> {
    match state.queue.job(id).await? {
        Some(record) if record.subject == caller.0.subject => Ok(record),
        _ => Err(no_job(id)),
    }
}

async fn status_of(state: &AppState, caller: &Caller, id: &JobId) -> Result<JobView, Problem> {
    let record = record_of(state, caller, id).await?;
    Ok(JobView::from_record(&record, &state.media))
}

pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    Ok(HttpResponse::Ok().json(status_of(&state, &caller, &id).await?))
}

pub async fn cancel(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    match state.queue.cancel(&id, &caller.0.subject).await? {
        CancelOutcome::Cancelled { .. } => {
            Ok(HttpResponse::Ok().json(status_of(&state, &caller, &id).await?))
        }
        CancelOutcome::Finished(s) => Err(Problem::conflict(
            "already-finished",
            format!(
                "job {id} is already {s}; only queued, retrying or active jobs can be cancelled"
            ),
        )),
        CancelOutcome::NotFound => Err(no_job(id)),
    }
}

pub async fn retry(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let id = job_id(&path)?;
    match state.queue.resubmit(&id, &caller.0.subject).await? {
        ResubmitOutcome::Queued => Ok(HttpResponse::Accepted()
            .insert_header(("Location", format!("/jobs/{id}")))
            .json(status_of(&state, &caller, &id).await?)),
        ResubmitOutcome::NotResubmittable(s) => Err(Problem::conflict(
            "not-retryable",
            format!("job {id} is {s}; only failed or cancelled jobs can be retried"),
        )),
        ResubmitOutcome::NotFound => Err(no_job(id)),
    }
}

/// Jobs in one page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

/// One page of `GET /jobs`.
#[derive(Serialize)]
struct JobList {
    jobs: Vec<JobView>,
    /// The URL of the next page; null on the last.
    next: Option<String>,
}

/// `GET /jobs?state=failed&state=cancelled&limit=20&cursor=...`: the caller's jobs, newest first.
pub async fn list(
    caller: Caller,
    query: web::Query<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    if caller.0.subject.name().is_none() {
        // Without sign-in every caller is the one anonymous subject: its list is everyone's.
        return Err(Problem::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "listing-needs-sign-in",
            "listing uploads needs sign-in (auth.mode = \"tokens\" or \"jwt\"): without it \
             every caller is the same anonymous subject, and the list would show everyone's uploads",
        ));
    }
    let mut states = Vec::new();
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (key, value) in query.iter() {
        match key.as_str() {
            "state" => {
                let wanted = value.parse::<JobState>().map_err(|_| {
                    let states = "queued, active, retrying, completed, failed, cancelled";
                    let detail = format!("state={value:?} is not one of {states}");
                    Problem::bad_request("bad-query", detail)
                })?;
                // Each state once, however often it is asked for: the filter and the next
                // page's URL stay as small as the six states.
                if !states.contains(&wanted) {
                    states.push(wanted);
                }
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        Problem::bad_request(
                            "bad-query",
                            format!("limit={value:?} must be a number from 1 to {MAX_PAGE}"),
                        )
                    })?
            }
            "cursor" => {
                cursor = Some(value.parse::<JobId>().map_err(|_| {
                    Problem::bad_request(
                        "bad-query",
                        format!("cursor={value:?} is not a cursor this listing gave"),
                    )
                })?)
            }
            other => {
                return Err(Problem::bad_request(
                    "bad-query",
                    format!("unknown parameter {other:?}: use state, limit and cursor"),
                ));
            }
        }
    }
    let page = state
        .queue
        .list(&caller.0.subject, cursor, limit, &states)
        .await?;
    let next = page.next.map(|after| {
        let mut url = format!("/jobs?limit={limit}&cursor={after}");
        for s in &states {
            url.push_str(&format!("&state={s}"));
        }
        url
    });
    Ok(HttpResponse::Ok().json(JobList {
        jobs: page
            .jobs
            .iter()
            .map(|record| JobView::from_record(record, &state.media))
            .collect(),
        next,
    }))
}

/// `GET /me`: who the caller is signed in as, and how this server signs callers in.
pub async fn me(caller: Caller, auth: web::Data<Authenticator>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "subject": caller.0.subject.name(),
        "auth": auth.mode().as_str(),
        "expires_at": caller.0.expires_at,
    }))
}
