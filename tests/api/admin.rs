//! The admin API's hold on the queue over HTTP: counts, pause across instances, failed jobs listed
//! with their errors, retry, clean by age and delete, and bad queries refused with a reason.

use std::time::Duration;

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg};

async fn send(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .send()
        .await
        .unwrap()
}

async fn call(app: &TestApp, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = send(app, method, path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    call(app, reqwest::Method::GET, path).await
}

async fn post(app: &TestApp, path: &str) -> (u16, Value) {
    call(app, reqwest::Method::POST, path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_pauses_inspects_retries_cleans_and_deletes() {
    let mut app = TestApp::spawn_with(Role::HttpOnly, |settings| {
        settings.auth.admin_on_loopback = true;
    })
    .await;
    let (status, paused) = post(&app, "/admin/pause").await;
    assert_eq!((status, &paused["paused"]), (200, &Value::Bool(true)));
    let good = app.upload_one(jpeg(64, 48)).await;
    let mut cut = jpeg(400, 300);
    cut.truncate(cut.len() / 2);
    let broken = app.upload_one(cut).await;

    // A worker in another process claims nothing while paused.
    let (status, none) = get(&app, "/admin/instances").await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(
        none["instances"],
        serde_json::json!([]),
        "an HTTP-only process has no workers"
    );
    let mut worker = app.sibling(Role::WorkerOnly).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (status, listed) = get(&app, "/admin/instances").await;
    assert_eq!(status, 200);
    let instances = listed["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{listed}");
    let instance = &instances[0];
    assert_eq!(instance["alive"], true, "{listed}");
    assert!(instance["lapses_in_ms"].as_u64().unwrap() > 0);
    let slots = instance["workers"].as_array().unwrap();
    assert_eq!(slots.len(), 2, "the test settings' two workers: {listed}");
    assert!(
        slots.iter().all(|slot| slot["holding"] == 0),
        "paused: {listed}"
    );
    let (_, counts) = get(&app, "/admin/queue").await;
    assert_eq!(
        (&counts["waiting"], &counts["active"], &counts["paused"]),
        (&Value::from(2), &Value::from(0), &Value::Bool(true)),
        "{counts}"
    );
    assert_eq!(app.job(&good).await["state"], "queued");

    assert_eq!(post(&app, "/admin/resume").await.0, 200);
    app.wait_for(&good, &["completed"]).await;
    app.wait_for(&broken, &["failed"]).await;
    let (_, counts) = get(&app, "/admin/queue").await;
    assert_eq!(
        (&counts["completed"], &counts["failed"], &counts["paused"]),
        (&Value::from(1), &Value::from(1), &Value::Bool(false)),
        "{counts}"
    );

    let (status, failed) = get(&app, "/admin/jobs?state=failed&limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(failed["total"], 1);
    let job = &failed["jobs"][0];
    assert_eq!(
        (&job["id"], &job["error"]["code"], &job["subject"]),
        (
            &Value::from(broken.clone()),
            &Value::from("truncated-image"),
            &Value::Null
        ),
        "{job}"
    );

    let (status, retried) = post(&app, "/admin/jobs/retry-failed").await;
    assert_eq!((status, &retried["retried"]), (200, &Value::from(1)));
    app.wait_for(&broken, &["failed"]).await;
    let (status, _) = post(&app, &format!("/admin/jobs/{good}/retry")).await;
    assert_eq!(status, 409, "a completed job is not retried");

    let (status, cleaned) = post(&app, "/admin/clean?state=completed&older_than_secs=3600").await;
    assert_eq!((status, &cleaned["removed"]), (200, &Value::from(0)));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, cleaned) = post(&app, "/admin/clean?state=completed&older_than_secs=0").await;
    assert_eq!((status, &cleaned["removed"]), (200, &Value::from(1)));
    let gone = app
        .client
        .get(app.url(&format!("/jobs/{good}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let (status, deleted) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/jobs/{broken}"),
    )
    .await;
    assert_eq!((status, &deleted["was"]), (200, &Value::from("failed")));
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/jobs/{broken}"),
    )
    .await;
    assert_eq!(status, 404);
    let (_, counts) = get(&app, "/admin/queue").await;
    assert_eq!(
        (&counts["completed"], &counts["failed"]),
        (&Value::from(0), &Value::from(0))
    );
    worker.stop().await;
    let (_, after) = get(&app, "/admin/instances").await;
    assert_eq!(
        after["instances"],
        serde_json::json!([]),
        "a stopped instance retires: {after}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_admin_queries_are_refused_with_a_reason_and_strangers_get_nothing() {
    let app = TestApp::spawn_with(Role::HttpOnly, |settings| {
        settings.auth.admin_on_loopback = true;
    })
    .await;
    for (method, path) in [
        (reqwest::Method::GET, "/admin/jobs?state=queued"),
        (reqwest::Method::GET, "/admin/jobs?limit=0"),
        (reqwest::Method::GET, "/admin/jobs?limit=100000"),
        (reqwest::Method::GET, "/admin/jobs?offset=-1"),
        (reqwest::Method::GET, "/admin/jobs?page=2"),
        (reqwest::Method::POST, "/admin/clean?state=completed"),
        (
            reqwest::Method::POST,
            "/admin/clean?state=active&older_than_secs=1",
        ),
        (
            reqwest::Method::POST,
            "/admin/clean?state=failed&older_than_secs=soon",
        ),
    ] {
        let response = send(&app, method, path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "bad-query", "{path}");
        assert!(!body["detail"].as_str().unwrap().is_empty());
    }
    let (status, _) = post(&app, "/admin/jobs/not-an-id/retry").await;
    assert_eq!(status, 404);

    let closed = TestApp::spawn(Role::HttpOnly).await;
    for path in [
        "/admin/queue",
        "/admin/jobs",
        "/admin/instances",
        "/admin/events",
    ] {
        let (status, _) = get(&closed, path).await;
        assert_eq!(status, 403, "{path}");
    }
    for path in ["/admin/pause", "/admin/resume", "/admin/jobs/retry-failed"] {
        let (status, _) = post(&closed, path).await;
        assert_eq!(status, 403, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_served_and_its_stream_carries_every_jobs_events() {
    use futures_util::StreamExt;

    let mut app = TestApp::spawn_with(Role::All, |settings| {
        settings.auth.admin_on_loopback = true;
    })
    .await;
    let page = send(&app, reqwest::Method::GET, "/admin").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(page.text().await.unwrap().contains("/static/admin.js"));

    let stream = send(&app, reqwest::Method::GET, "/admin/events").await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "application/x-ndjson");
    let mut chunks = stream.bytes_stream();
    let mut buffered = Vec::new();
    let mut lines = Vec::<Value>::new();
    let mut next_line = async || -> Value {
        loop {
            if let Some(end) = buffered.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffered.drain(..=end).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), chunks.next())
                .await
                .expect("a line within 30 s")
                .expect("the stream stays open")
                .unwrap();
            buffered.extend_from_slice(&chunk);
        }
    };
    assert_eq!(
        next_line().await["type"],
        "resync",
        "the stream opens by asking for a read"
    );
    // Two uploads: neither watched by anyone, both seen through to their end.
    let first = app.upload_one(jpeg(64, 48)).await;
    let second = app.upload_one(jpeg(48, 64)).await;
    let mut completed = std::collections::HashSet::new();
    while completed.len() < 2 {
        let line = next_line().await;
        assert_eq!(line["type"], "event", "{line}");
        assert!(line.get("result").is_none(), "no storage keys: {line}");
        if line["state"] == "completed" {
            completed.insert(line["id"].as_str().unwrap().to_owned());
        }
        lines.push(line);
    }
    assert_eq!(completed, [first, second].into_iter().collect());
    let states: Vec<&str> = lines.iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert!(
        states.contains(&"queued") && states.contains(&"active"),
        "{states:?}"
    );

    // A stream held open does not hold up a graceful stop: it ends with the process.
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("pixdrop stops with a dashboard stream open");
    let end = tokio::time::timeout(Duration::from_secs(5), chunks.next()).await;
    assert!(
        matches!(end, Ok(None | Some(Err(_)))),
        "the stream ended: {end:?}"
    );
}
