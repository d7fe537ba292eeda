//! What pixdrop measures, and `/metrics`, where Prometheus reads it. Two kinds of figures:
//!
//! - This process's own, recorded as things happen through the `metrics` facade: HTTP requests by
//!   route and status, uploads and their bytes, job durations and queue waits (histograms), jobs
//!   running, open websockets, Redis errors and reconnects.
//! - The whole queue's, read from Redis at each scrape (`Queue::stats`): depth per state, workers
//!   registered, jobs finished per state and failures and retries per error code, counted by the
//!   scripts themselves, so any process shows the work of every other, worker-only ones included.
//!
//! Names and labels follow Prometheus' conventions (`_total` counters, `_seconds` histograms, base
//! units); no label takes unbounded values: routes are patterns (`/jobs/{id}`), never paths, and
//! error codes come from pixdrop's own list.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::queue::{Queue, QueueStats};

pub const HTTP_REQUESTS: &str = "pixdrop_http_requests_total";
pub const HTTP_DURATION: &str = "pixdrop_http_request_duration_seconds";
pub const UPLOADS: &str = "pixdrop_uploads_total";
pub const UPLOAD_BYTES: &str = "pixdrop_upload_bytes_total";
pub const JOB_DURATION: &str = "pixdrop_job_duration_seconds";
pub const JOB_QUEUE_WAIT: &str = "pixdrop_job_queue_wait_seconds";
pub const JOBS_RUNNING: &str = "pixdrop_jobs_running";
pub const WORKERS: &str = "pixdrop_workers";
pub const WEBSOCKETS_OPEN: &str = "pixdrop_websockets_open";
pub const REDIS_ERRORS: &str = "pixdrop_redis_errors_total";
pub const REDIS_RECONNECTS: &str = "pixdrop_redis_reconnects_total";
pub const QUEUE_JOBS: &str = "pixdrop_queue_jobs";
pub const QUEUE_WORKERS: &str = "pixdrop_queue_workers";
pub const QUEUE_FINISHED: &str = "pixdrop_queue_jobs_finished_total";
pub const QUEUE_FAILURES: &str = "pixdrop_queue_job_failures_total";
pub const QUEUE_RETRIES: &str = "pixdrop_queue_job_retries_total";

/// Histogram buckets in seconds: from a fast HTTP answer to a long job.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The process's recorder, installed on first use (one per process: the `metrics` facade is global).
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("pixdrop installs the only metrics recorder");
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        "Time to answer an HTTP request (to its head), by route."
    );
    describe_counter!(UPLOADS, "Files accepted for processing (202).");
    describe_counter!(UPLOAD_BYTES, "Bytes of the files accepted.");
    describe_histogram!(
        JOB_DURATION,
        "Time a worker of this process spent on a job, by outcome."
    );
    describe_histogram!(
        JOB_QUEUE_WAIT,
        "Time a job waited in the queue before a worker of this process claimed it."
    );
    describe_gauge!(JOBS_RUNNING, "Jobs this process's workers are running.");
    describe_gauge!(WORKERS, "Worker tasks of this process.");
    describe_gauge!(WEBSOCKETS_OPEN, "Websockets open on this process.");
    describe_counter!(
        REDIS_ERRORS,
        "Calls to Redis that failed, by the part of pixdrop that made them."
    );
    describe_counter!(
        REDIS_RECONNECTS,
        "Redis connections opened again after a failure."
    );
}

/// The exposition: everything this process recorded, then the queue's figures read afresh from
/// Redis (left out, and the error counted, when Redis does not answer).
pub async fn render(queue: &Queue) -> String {
    let handle = recorder();
    let stats = queue.stats().await;
    if let Err(e) = &stats {
        redis_error("metrics");
        tracing::warn!(error = %e, "metrics: the queue's figures could not be read");
    }
    handle.run_upkeep();
    let mut text = handle.render();
    if let Ok(stats) = stats {
        text.push_str(&queue_section(&stats));
    }
    text
}

/// The queue-wide figures in the text format. Written here rather than through the recorder: they
/// are Redis's values as they are now, and a counter must be able to go back to zero (a Redis
/// whose data was lost), which the recorder's counters, only ever raised, cannot show.
fn queue_section(stats: &QueueStats) -> String {
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{labels} {value}\n"));
        }
        text.push('\n');
    };
    let label = |key: &str, value: &str| format!("{{{key}=\"{}\"}}", escape(value));
    family(
        QUEUE_JOBS,
        "gauge",
        "Jobs in the queue by state, across every instance.",
        &[
            (label("state", "waiting"), stats.counts.waiting),
            (label("state", "retrying"), stats.counts.retrying),
            (label("state", "active"), stats.counts.active),
        ],
    );
    family(
        QUEUE_WORKERS,
        "gauge",
        "Worker slots registered by every instance (each registers up to its workers.max).",
        &[(String::new(), stats.counts.workers)],
    );
    let finished: Vec<(String, u64)> = ["completed", "failed", "cancelled"]
        .iter()
        .map(|state| {
            (
                label("state", state),
                stats.finished.get(*state).copied().unwrap_or(0),
            )
        })
        .collect();
    family(
        QUEUE_FINISHED,
        "counter",
        "Jobs that ended completed, failed or cancelled, across every instance.",
        &finished,
    );
    let by_code = |counts: &std::collections::BTreeMap<String, u64>| -> Vec<(String, u64)> {
        counts
            .iter()
            .map(|(code, n)| (label("code", code), *n))
            .collect()
    };
    family(
        QUEUE_FAILURES,
        "counter",
        "Jobs failed for good, by error code, across every instance.",
        &by_code(&stats.failed_by_code),
    );
    family(
        QUEUE_RETRIES,
        "counter",
        "Attempts that failed and were scheduled again, by error code, across every instance.",
        &by_code(&stats.retried_by_code),
    );
    text
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A call to Redis failed in `component` (`http`, `worker`, `events`, `metrics`...).
pub fn redis_error(component: &'static str) {
    counter!(REDIS_ERRORS, "component" => component).increment(1);
}

/// A Redis connection was opened again after a failure in `component`.
pub fn redis_reconnect(component: &'static str) {
    counter!(REDIS_RECONNECTS, "component" => component).increment(1);
}

/// An HTTP request answered: `route` is the matched pattern, or `unmatched`.
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    // A client may send any method name: the label takes the standard ones, the rest as one.
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    };
    let (method, route) = (method.to_owned(), route.to_owned());
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route).record(took.as_secs_f64());
}

/// Files accepted by an upload, and their bytes.
pub fn uploaded(files: u64, bytes: u64) {
    counter!(UPLOADS).increment(files);
    counter!(UPLOAD_BYTES).increment(bytes);
}

/// A job claimed after waiting `waited` in the queue.
pub fn job_claimed(waited: Duration) {
    histogram!(JOB_QUEUE_WAIT).record(waited.as_secs_f64());
}

/// A job's run ended with `outcome` (`completed`, `failed`, `handed-back`) after `took`.
pub fn job_ran(outcome: &'static str, took: Duration) {
    histogram!(JOB_DURATION, "outcome" => outcome).record(took.as_secs_f64());
}

/// Holds one up on a gauge while it lives: a running job, an open websocket, a worker task.
pub struct Held(&'static str);

impl Held {
    pub fn new(name: &'static str) -> Self {
        gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}
