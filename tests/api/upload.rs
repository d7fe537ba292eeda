//! Uploads that succeed: one file, several, and the whole way to variants.

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg, png};

#[tokio::test]
async fn one_jpeg_is_accepted_and_becomes_webp_variants() {
    // 202 with Location and the job list; the job completes with both variants, sized right.
    let app = TestApp::spawn(Role::All).await;
    let response = app
        .upload(vec![("file", "holiday.jpg", jpeg(1600, 1200))])
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let job = &body["jobs"][0];
    let id = job["id"].as_str().unwrap();
    assert_eq!(location, format!("/jobs/{id}"));
    assert_eq!(job["state"], "queued");
    assert_eq!(job["filename"], "holiday.jpg");
    assert_eq!(job["status_url"], format!("/jobs/{id}"));
    assert_eq!(job["events_url"], format!("/ws?job={id}"));
    assert!(job["bytes"].as_u64().unwrap() > 1000);

    let done = app.wait_for(id, &["completed", "failed"]).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["error"], Value::Null);
    assert_eq!(done["original"]["format"], "jpeg");
    assert_eq!(
        (
            done["original"]["width"].as_u64(),
            done["original"]["height"].as_u64()
        ),
        (Some(1600), Some(1200))
    );
    assert_eq!(done["original"]["sha256"].as_str().unwrap().len(), 64);
    let sizes: Vec<(String, u64, u64)> = done["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["width"].as_u64().unwrap(),
                v["height"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [("thumb".into(), 320, 240), ("large".into(), 1280, 960)]
    );
    assert!(done["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn several_files_in_one_request_become_one_job_each() {
    // `file` and `media` fields both count; a plain form field is ignored.
    let app = TestApp::spawn(Role::All).await;
    let form = reqwest::multipart::Form::new()
        .text("album", "summer")
        .part(
            "file",
            reqwest::multipart::Part::bytes(jpeg(64, 48)).file_name("a.jpg"),
        )
        .part(
            "media",
            reqwest::multipart::Part::bytes(png(40, 30)).file_name("b.png"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(jpeg(30, 60)).file_name("c.jpg"),
        );
    let response = app.upload_form(form).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let jobs = body["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.jpg", "b.png", "c.jpg"]);
    for job in jobs {
        let done = app
            .wait_for(job["id"].as_str().unwrap(), &["completed", "failed"])
            .await;
        assert_eq!(done["state"], "completed", "{done}");
    }
}

#[tokio::test]
async fn jobs_still_queued_when_pixdrop_stops_complete_after_it_restarts() {
    // Accepted work survives a restart: an HTTP-only process takes uploads, stops; a full one runs them.
    let mut app = TestApp::spawn(Role::HttpOnly).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let response = app.upload(vec![("file", "x.jpg", jpeg(50 + n, 40))]).await;
        let body: Value = response.json().await.unwrap();
        ids.push(body["jobs"][0]["id"].as_str().unwrap().to_owned());
    }
    app.stop().await;
    app.start(Role::All).await;
    for id in &ids {
        let done = app.wait_for(id, &["completed", "failed"]).await;
        assert_eq!(done["state"], "completed", "{done}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upload_may_ask_for_the_high_priority_line() {
    // No workers: the jobs stay queued, in the line each asked for.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let part = || reqwest::multipart::Part::bytes(jpeg(64, 48)).file_name("a.jpg");
    let high = reqwest::multipart::Form::new()
        .part("file", part())
        .text("priority", "high");
    let bulk = reqwest::multipart::Form::new()
        .text("priority", "normal")
        .part("file", part());
    let plain = reqwest::multipart::Form::new().part("file", part());
    let mut priorities = Vec::new();
    for form in [high, bulk, plain] {
        let response = app.upload_form(form).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        let job = app.job(body["jobs"][0]["id"].as_str().unwrap()).await;
        assert_eq!(job["state"], "queued");
        priorities.push(job["priority"].as_str().unwrap().to_owned());
    }
    assert_eq!(priorities, ["high", "normal", "normal"]);
    let counts = app.redis.queue().counts().await.unwrap();
    assert_eq!((counts.waiting, counts.waiting_high), (3, 1), "{counts:?}");
}
