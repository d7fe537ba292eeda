//! Every unhappy path of the API answers with problem+json and a stable code, and leaves nothing
//! behind: no stored file, no job.

use pixdrop::app::Role;
use reqwest::multipart::Form;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg};

/// Asserts a problem+json answer with this status and code; returns its body.
async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}

/// Nothing of a refused upload may remain: no original, no temp file, no job.
async fn nothing_left(app: &TestApp) {
    let files: Vec<String> = app
        .stored_files()
        .into_iter()
        .filter(|f| !f.starts_with("redis"))
        .collect();
    assert!(files.is_empty(), "left behind: {files:?}");
    let depth = app.redis.queue().depths().await.unwrap();
    assert_eq!(depth.waiting, 0);
}

#[tokio::test]
async fn a_file_that_is_not_an_image_is_refused_with_415_naming_what_it_is() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let response = app
        .upload(vec![(
            "file",
            "notes.jpg",
            b"%PDF-1.7 this is a document".to_vec(),
        )])
        .await;
    let body = problem(response, 415, "unsupported-type").await;
    assert_eq!(body["detected_type"], "application/pdf");
    assert!(body["detail"].as_str().unwrap().contains("notes.jpg"));
    nothing_left(&app).await;
}

#[tokio::test]
async fn one_bad_file_refuses_the_whole_request_and_keeps_nothing() {
    // All or nothing: the good first file is not stored or queued either.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let response = app
        .upload(vec![
            ("file", "good.jpg", jpeg(40, 30)),
            ("file", "bad.txt", b"hello, plain text here!".to_vec()),
        ])
        .await;
    problem(response, 415, "unsupported-type").await;
    nothing_left(&app).await;
}

#[tokio::test]
async fn an_empty_file_part_is_a_400() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let response = app.upload(vec![("file", "empty.jpg", Vec::new())]).await;
    problem(response, 400, "empty-file").await;
    nothing_left(&app).await;
}

#[tokio::test]
async fn a_request_without_a_file_part_is_a_400() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let form = Form::new().text("title", "no file here");
    let response = app.upload_form(form).await;
    problem(response, 400, "no-file").await;
}

#[tokio::test]
async fn a_body_that_is_not_multipart_is_a_400() {
    // Wrong content type, and a multipart body cut off mid-part.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let response = app.upload_raw(None, "just text").await;
    problem(response, 400, "malformed-multipart").await;
    let truncated = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\u{ff}\u{d8}\u{ff}";
    let response = app
        .upload_raw(Some("multipart/form-data; boundary=XyZ"), truncated)
        .await;
    problem(response, 400, "malformed-multipart").await;
    nothing_left(&app).await;
}

#[tokio::test]
async fn limits_on_file_size_file_count_and_body_size_are_413s() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.max_file_bytes = 20_000;
        s.uploads.max_files = 2;
        s.uploads.max_body_bytes = 60_000;
    })
    .await;
    let big = vec![0xFFu8; 25_000];
    let mut jpeg_ish = jpeg(16, 16);
    jpeg_ish.extend_from_slice(&big);
    let response = app.upload(vec![("file", "big.jpg", jpeg_ish)]).await;
    problem(response, 413, "file-too-large").await;

    let three = vec![
        ("file", "1.jpg", jpeg(8, 8)),
        ("file", "2.jpg", jpeg(8, 8)),
        ("file", "3.jpg", jpeg(8, 8)),
    ];
    problem(app.upload(three).await, 413, "too-many-files").await;

    let response = app
        .upload_raw(
            Some("multipart/form-data; boundary=XyZ"),
            vec![b'a'; 70_000],
        )
        .await;
    problem(response, 413, "body-too-large").await;
    nothing_left(&app).await;
}

#[tokio::test]
async fn an_upload_while_redis_is_down_is_a_503_and_keeps_no_file() {
    let mut app = TestApp::spawn(Role::HttpOnly).await;
    app.redis.server.kill();
    let response = app.upload(vec![("file", "a.jpg", jpeg(20, 20))]).await;
    problem(response, 503, "unavailable").await;
    let files: Vec<String> = app
        .stored_files()
        .into_iter()
        .filter(|f| !f.starts_with("redis"))
        .collect();
    assert!(files.is_empty(), "left behind: {files:?}");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    problem(ready, 503, "unavailable").await;
    app.redis.server.restart().unwrap();
}

#[tokio::test]
async fn unknown_jobs_routes_and_media_are_problem_404s() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let unknown = pixdrop::queue::JobId::new();
    for path in [
        format!("/jobs/{unknown}"),
        "/jobs/not-an-id".to_string(),
        "/nowhere".to_string(),
        "/media/../Cargo.toml".to_string(),
        format!("/media/variants/{unknown}/thumb.webp"),
    ] {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        problem(response, 404, "not-found").await;
    }
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn an_upload_whose_enqueue_answer_is_lost_is_accepted_and_its_job_completes() {
    // The enqueue runs on Redis but its answer never comes back. The handler asks whether the
    // jobs exist rather than guessing: they do, so it answers 202 and keeps the original, and the
    // job completes instead of failing on a file its own request removed.
    let (app, proxy) = TestApp::spawn_behind_proxy(Role::All).await;
    // One upload first, so Redis has the script and the request that runs it is the one cut.
    app.upload_one(jpeg(32, 24)).await;
    proxy.lose_reply_to(b"\"original\":\"originals/");
    let id = app.upload_one(jpeg(64, 48)).await;
    assert!(proxy.fired(), "the enqueue's answer was lost");
    let done = app.wait_for(&id, &["completed", "failed"]).await;
    assert_eq!(done["state"], "completed", "{done}");
}
