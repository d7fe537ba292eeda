//! `GET /jobs/{id}`, `DELETE /jobs/{id}` (cancel) and `POST /jobs/{id}/retry`, each answering
//! with the job's [`JobView`].

use actix_web::{HttpResponse, web};

use super::AppState;
use super::problem::Problem;
use super::view::JobView;
use crate::queue::{CancelOutcome, JobId, ResubmitOutcome};

/// Parses the path's id; anything but a job id is simply not found.
fn job_id(raw: &str) -> Result<JobId, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found(format!("no job {raw:?}")))
}

async fn status_of(state: &AppState, id: &JobId) -> Result<JobView, Problem> {
    let record = state
        .queue
        .job(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no job {id} (unknown, or expired)")))?;
    Ok(JobView::from_record(&record))
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
