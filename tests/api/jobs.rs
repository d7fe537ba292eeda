//! Job control over HTTP: cancel, retry of a failed job, and a job that fails permanently.

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg};
use pixdrop::pipeline::{Fit, VariantSpec};

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

#[tokio::test]
async fn cancelling_a_running_job_stops_its_pipeline_before_the_next_variant() {
    // The first variant is a slow 12 MP encode. Cancelled while it runs, the worker learns of it
    // at its next progress report (the first variant written) and hands over nothing more: the
    // second variant is never written.
    let app = TestApp::spawn_with(Role::All, |s| {
        s.variants = vec![
            VariantSpec::new("big", 4000, 4000, Fit::Inside, 80.0).unwrap(),
            VariantSpec::new("small", 100, 100, Fit::Inside, 80.0).unwrap(),
        ];
    })
    .await;
    let (width, height) = (4000, 3000);
    let flat = image::RgbImage::from_raw(width, height, vec![90; (width * height * 3) as usize]);
    let mut photo = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(flat.unwrap())
        .write_to(&mut photo, image::ImageFormat::Png)
        .unwrap();
    let id = app.upload_one(photo.into_inner()).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.job(&id).await["step"] != "decoded" {
        assert!(tokio::time::Instant::now() < deadline, "never decoded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.cancel(&id).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(app.job(&id).await["state"], "cancelled");
    let small = format!("variants/{id}/small.webp");
    assert!(
        !app.stored_files().contains(&small),
        "the variant after the cancel was written"
    );
}
