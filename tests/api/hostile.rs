//! Clients that mean harm, or just misbehave: each gets a clear problem+json answer at once, the
//! process stays ready, and memory stays bounded.

use std::time::{Duration, Instant};

use pixdrop::app::Role;

use crate::helpers::TestApp;
use crate::raw::{answer_of, chunked_upload, resident_bytes, stalled_upload};

const FILE_PART: &str =
    "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n";

async fn still_ready(app: &TestApp) {
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the process is still ready");
}

#[tokio::test]
async fn a_ten_byte_file_with_a_short_ftyp_box_is_a_415_not_a_dropped_connection() {
    // `00 00 00 08 ftypab` once panicked the sniffer; now it is named and refused, eleven times.
    let app = TestApp::spawn(Role::HttpOnly).await;
    for _ in 0..11 {
        let response = app
            .upload(vec![("file", "x.heic", b"\0\0\0\x08ftypab".to_vec())])
            .await;
        assert_eq!(response.status(), 415);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unsupported-type");
    }
    still_ready(&app).await;
}

#[tokio::test]
async fn a_part_header_that_never_ends_is_a_400_with_memory_bounded() {
    // 32 MiB of header without its blank line: refused once the header passes its 16 KiB cap,
    // rather than buffered and rescanned until the body limit.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let before = resident_bytes();
    let started = Instant::now();
    let head = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"; x=\"";
    let body = std::iter::once(head.as_bytes().to_vec())
        .chain(std::iter::repeat_n(vec![b'a'; 64 * 1024], 512));
    let answer = chunked_upload(&app.address, body, Duration::ZERO).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.problem()["code"], "part-header-too-large");
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
    assert!(started.elapsed() < Duration::from_secs(10));
    still_ready(&app).await;
}

#[tokio::test]
async fn a_body_that_ends_in_a_line_break_without_its_closing_boundary_is_a_400() {
    // The parser, given a body that ends in `\r\n` short of its closing boundary, waits for bytes
    // that cannot come; the guard sees it wait after the end and refuses the body at once.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let started = Instant::now();
    let body = [
        FILE_PART.as_bytes(),
        b"\xff\xd8\xff\xe0 not much of a jpeg\r\n",
    ]
    .concat();
    let answer = chunked_upload(&app.address, std::iter::once(body), Duration::ZERO).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.problem()["code"], "malformed-multipart");
    assert!(started.elapsed() < Duration::from_secs(5));
    still_ready(&app).await;
}

#[tokio::test]
async fn every_byte_of_a_chunked_body_counts_against_its_limit() {
    // No Content-Length to refuse early, and bytes the parser skips (a preamble of blank lines,
    // so no header grows past its cap): the guard still counts them all.
    let app = TestApp::spawn_with(Role::HttpOnly, |s| s.uploads.max_body_bytes = 100_000).await;
    let line = [vec![b'p'; 996], b"\r\n\r\n".to_vec()].concat();
    let body = std::iter::repeat_n(line, 200);
    let answer = chunked_upload(&app.address, body, Duration::ZERO).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.problem()["code"], "body-too-large");
    still_ready(&app).await;
}

#[tokio::test]
async fn too_many_fields_and_an_oversized_field_are_413s() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.max_text_fields = 3;
        s.uploads.max_text_field_bytes = 1000;
    })
    .await;
    let mut form = reqwest::multipart::Form::new();
    for i in 0..4 {
        form = form.text(format!("f{i}"), "x");
    }
    let response = app.upload_form(form).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "too-many-fields");

    let form = reqwest::multipart::Form::new().text("note", "y".repeat(1001));
    let response = app.upload_form(form).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "field-too-large");
    still_ready(&app).await;
}

#[tokio::test]
async fn a_priority_other_than_high_or_normal_is_a_400_and_stores_nothing() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    for value in ["urgent", "HIGH", "high\u{0}", "h".repeat(500).as_str()] {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(crate::helpers::jpeg(8, 8)).file_name("a.jpg"),
            )
            .text("priority", value.to_owned());
        let response = app.upload_form(form).await;
        assert_eq!(response.status(), 400, "{value:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "bad-priority", "{body}");
    }
    assert_eq!(app.redis.queue().counts().await.unwrap().waiting, 0);
    still_ready(&app).await;
    assert!(app.stored_files().iter().all(|f| f.starts_with("redis")));
}

#[tokio::test]
async fn a_body_that_stalls_is_a_408_after_the_idle_timeout() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.body_idle_timeout_secs = 1;
    })
    .await;
    let started = Instant::now();
    let answer = answer_of(stalled_upload(&app.address).await).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.problem()["code"], "body-idle");
    assert!(started.elapsed() < Duration::from_secs(5));
    still_ready(&app).await;
    assert!(app.stored_files().iter().all(|f| f.starts_with("redis")));
}

#[tokio::test]
async fn a_body_that_trickles_is_a_408_at_its_deadline() {
    // A byte every 200 ms never trips the idle timeout, but the body may take only 2 s.
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.body_idle_timeout_secs = 1;
        s.uploads.body_timeout_secs = 2;
    })
    .await;
    let started = Instant::now();
    let body =
        std::iter::once(FILE_PART.as_bytes().to_vec()).chain(std::iter::repeat_n(vec![0xFF], 100));
    let answer = chunked_upload(&app.address, body, Duration::from_millis(200)).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.problem()["code"], "body-timeout");
    assert!(started.elapsed() < Duration::from_secs(6));
    still_ready(&app).await;
}

#[tokio::test]
async fn uploads_over_the_per_client_and_total_caps_are_429_and_503_with_retry_after() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.max_concurrent_per_client = 2;
    })
    .await;
    let holding = [
        stalled_upload(&app.address).await,
        stalled_upload(&app.address).await,
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = answer_of(stalled_upload(&app.address).await).await;
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(answer.problem()["code"], "too-many-uploads");
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    drop(holding);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = app
        .upload(vec![("file", "a.jpg", crate::helpers::jpeg(8, 8))])
        .await;
    assert_eq!(
        response.status(),
        202,
        "places are freed when clients leave"
    );

    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.max_concurrent = 1;
    })
    .await;
    let _holding = stalled_upload(&app.address).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = answer_of(stalled_upload(&app.address).await).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.problem()["code"], "unavailable");
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
}

#[tokio::test]
async fn two_hundred_slow_uploads_at_once_keep_memory_bounded_and_the_process_ready() {
    // The cap holds most of them off at once; the rest hold a place each, and the process still
    // answers everyone else.
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.max_concurrent = 128;
        s.uploads.max_concurrent_per_client = 1000;
    })
    .await;
    let before = resident_bytes();
    let mut sockets = Vec::with_capacity(200);
    for _ in 0..200 {
        sockets.push(stalled_upload(&app.address).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_ready(&app).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "resident memory grew by {grown} bytes");
    // Which connections got in depends on the order the server's threads took them: count.
    let answers = futures_util::future::join_all(sockets.into_iter().map(|socket| async {
        let answered = tokio::time::timeout(Duration::from_secs(2), answer_of(socket)).await;
        answered.ok().map(|answer| answer.status)
    }))
    .await;
    let refused = answers.iter().filter(|a| **a == Some(503)).count();
    let held = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!((refused, held), (72, 128), "{answers:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app
        .upload(vec![("file", "a.jpg", crate::helpers::jpeg(8, 8))])
        .await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn an_upload_when_the_disk_is_nearly_full_is_a_507() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.storage.min_free_bytes = u64::MAX / 2;
    })
    .await;
    let response = app
        .upload(vec![("file", "a.jpg", crate::helpers::jpeg(8, 8))])
        .await;
    assert_eq!(response.status(), 507);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "insufficient-storage");
    assert!(app.stored_files().iter().all(|f| f.starts_with("redis")));
}
