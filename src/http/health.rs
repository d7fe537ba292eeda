//! `GET /healthz` (the process answers) and `GET /readyz` (it can take work: Redis answers and it is
//! not shutting down).

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::problem::Problem;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    if state.shutting_down.load(Ordering::SeqCst) {
        return Err(Problem::unavailable("shutting down"));
    }
    state
        .queue
        .ping()
        .await
        .map_err(|_| Problem::unavailable("redis does not answer"))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
