//! Job control over HTTP: cancel, retry of a failed job, and a job that fails permanently.

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg};

#[tokio::test]
async fn a_truncated_jpeg_fails_permanently_with_its_reason_and_can_be_retried() {
    // One attempt, failed with a code and words; retry puts it back (and it fails again, once).
    let app = TestApp::spawn(Role::All).await;
    let mut cut = jpeg(400, 300);
    cut.truncate(cut.len() / 2);
    let id = app.upload_one(cut).await;
    let failed = app.wait_for(&id, &["failed", "completed"]).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["attempts"], 1, "a permanent error is not retried");
    assert_eq!(failed["error"]["code"], "truncated-image");
    assert!(!failed["error"]["detail"].as_str().unwrap().is_empty());

    let response = app.retry(&id).await;
    assert_eq!(response.status(), 202);
    let again = app.wait_for(&id, &["failed"]).await;
    assert_eq!(again["attempts"], 1);
}

#[tokio::test]
async fn a_queued_job_can_be_cancelled_and_a_finished_one_cannot() {
    // HTTP-only: nobody runs the job, so it stays queued until cancelled; then 409 on repeat.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let id = app.upload_one(jpeg(20, 20)).await;
    let response = app.cancel(&id).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "cancelled");
    let again = app.cancel(&id).await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["code"], "already-finished");
}

#[tokio::test]
async fn retrying_a_job_that_has_not_failed_is_a_409() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let id = app.upload_one(jpeg(20, 20)).await;
    let response = app.retry(&id).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not-retryable");
}
