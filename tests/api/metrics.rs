//! `/metrics`: Prometheus' text format, the queue's figures the same from every process (the
//! scripts count them in Redis), and this process's own counters moving as requests and jobs go.

use std::collections::BTreeMap;

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg};

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format, checking each line is a comment or a well-formed sample.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let labels = inner
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) =
                            pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(
            name.starts_with("pixdrop_")
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{line}"
        );
        assert!(
            !labels.contains_key("id") && !labels.contains_key("job_id"),
            "no label of unbounded values: {line}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the one sample named `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map_or(0.0, |s| s.value)
}

async fn scrape(app: &TestApp, url: &str) -> Vec<Sample> {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse(&response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_jobs_run_and_show_the_whole_queue_from_any_process() {
    // An HTTP-only process and a worker-only one on one Redis: the jobs run in the worker, and the
    // HTTP process's /metrics shows them finished, by state and error code; the worker's own
    // listener shows the same queue figures.
    let mut app = TestApp::spawn_with(Role::HttpOnly, |settings| {
        settings.auth.admin_on_loopback = true;
        settings.metrics.bind = Some("127.0.0.1:0".into());
    })
    .await;
    let api = app.url("/metrics");
    let before = scrape(&app, &api).await;
    assert_eq!(
        value(
            &before,
            "pixdrop_queue_jobs_finished_total",
            &[("state", "completed")]
        ),
        0.0
    );

    let ids = [
        app.upload_one(jpeg(64, 48)).await,
        app.upload_one(jpeg(48, 64)).await,
    ];
    let mut cut = jpeg(400, 300);
    cut.truncate(cut.len() / 2);
    let broken = app.upload_one(cut).await;
    let held = scrape(&app, &api).await;
    assert_eq!(
        value(&held, "pixdrop_queue_jobs", &[("state", "waiting")]),
        3.0,
        "no worker yet: all three wait"
    );

    // Methods a client makes up are counted as one.
    for made_up in ["FOO1", "FOO2"] {
        let method = reqwest::Method::from_bytes(made_up.as_bytes()).unwrap();
        app.client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
    }
    let mut worker = app.sibling(Role::WorkerOnly).await;
    for id in &ids {
        app.wait_for(id, &["completed"]).await;
    }
    app.wait_for(&broken, &["failed"]).await;

    let after = scrape(&app, &api).await;
    let finished = |state| {
        value(
            &after,
            "pixdrop_queue_jobs_finished_total",
            &[("state", state)],
        )
    };
    assert_eq!((finished("completed"), finished("failed")), (2.0, 1.0));
    assert_eq!(
        value(
            &after,
            "pixdrop_queue_job_failures_total",
            &[("code", "truncated-image")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "pixdrop_queue_jobs", &[("state", "waiting")]),
        0.0
    );
    assert_eq!(
        value(&after, "pixdrop_queue_jobs", &[("state", "active")]),
        0.0
    );
    assert!(value(&after, "pixdrop_queue_workers", &[]) >= 1.0);
    assert_eq!(value(&after, "pixdrop_uploads_total", &[]), 3.0);
    assert!(value(&after, "pixdrop_upload_bytes_total", &[]) > 0.0);
    let uploads = &[("method", "POST"), ("route", "/upload"), ("status", "202")];
    assert_eq!(value(&after, "pixdrop_http_requests_total", uploads), 3.0);
    let made_up: f64 = after
        .iter()
        .filter(|s| s.name == "pixdrop_http_requests_total" && s.labels["method"] == "other")
        .map(|s| s.value)
        .sum();
    assert_eq!(made_up, 2.0, "made-up methods are counted as other");
    assert!(
        after
            .iter()
            .all(|s| !s.labels.get("method").is_some_and(|m| m.starts_with("FOO")))
    );
    let job_reads = &[
        ("method", "GET"),
        ("route", "/jobs/{id}"),
        ("status", "200"),
    ];
    assert!(value(&after, "pixdrop_http_requests_total", job_reads) >= 3.0);
    assert!(
        value(
            &after,
            "pixdrop_http_request_duration_seconds_count",
            &[("route", "/upload")]
        ) >= 3.0
    );
    // Both processes share this test's recorder: the worker's own histograms show here too.
    assert_eq!(
        value(&after, "pixdrop_job_queue_wait_seconds_count", &[]),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "pixdrop_job_duration_seconds_count",
            &[("outcome", "completed")]
        ),
        2.0
    );

    // The worker-only process answers on its own listener, with the same queue figures.
    assert!(!worker.metrics_url.is_empty());
    let from_worker = scrape(&app, &worker.metrics_url).await;
    assert_eq!(
        value(
            &from_worker,
            "pixdrop_queue_jobs_finished_total",
            &[("state", "completed")]
        ),
        2.0
    );
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_apis_metrics_are_for_administrators_only() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert!(!body["detail"].as_str().unwrap().is_empty());
}
