//! Log lines as an operator's collector reads them: with `log.format = "json"` every line pixdrop
//! logs is one JSON object, the request lines included, and each line of a job's life names the job.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::photo::noisy_jpeg as photo;
use crate::{announced_port_in, pixdrop, upload_photo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_and_every_line_of_a_job_names_it() {
    let storage = tempfile::tempdir().unwrap();
    let mut child = pixdrop(storage.path())
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("PIXDROP__LOG__FORMAT", "json")
        .env("PIXDROP__SERVER__BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let output = child.stdout.take().unwrap();
    let collected = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    let wait_for = |what: &str, check: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check(&lines.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("the announcement", &|lines| {
        lines.iter().any(|l| l.starts_with("pixdrop is running: "))
    });
    let port = lines
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| announced_port_in(l))
        .unwrap();
    let id = upload_photo(&format!("http://127.0.0.1:{port}"), &photo(64, 48)).await;
    wait_for("the job's completion", &|lines| {
        lines
            .iter()
            .any(|l| l.contains("job completed") && l.contains(&id))
    });
    // A graceful stop, which also stops the embedded redis-server.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    let lines = lines.lock().unwrap();
    let logged: Vec<Value> = lines
        .iter()
        .filter(|l| !l.starts_with("pixdrop is running: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &logged {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let request = logged
        .iter()
        .find(|l| l["fields"]["request"] == "POST /upload")
        .expect("the upload's request line");
    assert_eq!(request["fields"]["status"], 202, "{request}");
    assert_eq!(request["target"], "pixdrop::http::access_log", "{request}");
    // The job's own lines: queued by the upload, started and completed by a worker, each naming it
    // (as a field, or through the worker's span).
    let names_job = |line: &Value| {
        line["fields"]["job_id"] == id.as_str() || line["span"]["job_id"] == id.as_str()
    };
    for message in ["job queued", "job started", "job completed"] {
        let line = logged
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {lines:?}"));
        assert!(names_job(line), "{line}");
    }
    let job_lines = logged
        .iter()
        .filter(|l| l["span"]["name"] == "run_job")
        .count();
    assert!(job_lines >= 2, "{lines:?}");
}
