//! Other sites cannot drive pixdrop from their visitors' browsers, and a hostile name resolving
//! to a local pixdrop gets nothing.

use pixdrop::app::Role;
use reqwest::header::{HOST, ORIGIN};

use crate::helpers::{TestApp, jpeg};

fn form() -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(jpeg(16, 16)).file_name("a.jpg"),
    )
}

async fn code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn uploads_cancels_and_sockets_from_another_origin_are_403s() {
    let app = TestApp::spawn_with(Role::All, |s| {
        s.server.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let evil = "https://evil.example";
    let upload = app
        .client
        .post(app.url("/upload"))
        .header(ORIGIN, evil)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(code(upload).await, (403, "cross-origin".into()));

    let id = app.upload_one(jpeg(16, 16)).await;
    let job_url = app.url(&format!("/jobs/{id}"));
    for request in [
        app.client.delete(&job_url),
        app.client.post(format!("{job_url}/retry")),
    ] {
        let answer = request.header(ORIGIN, evil).send().await.unwrap();
        assert_eq!(code(answer).await, (403, "cross-origin".into()));
    }

    let socket = app
        .client
        .get(app.url("/ws"))
        .header(ORIGIN, evil)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(code(socket).await, (403, "cross-origin".into()));

    // Reading is not guarded; pixdrop's own page and a listed origin may do everything.
    let read = app
        .client
        .get(app.url(&format!("/jobs/{id}")))
        .header(ORIGIN, evil);
    assert_eq!(read.send().await.unwrap().status(), 200);
    let own = app.address.clone();
    for origin in [own.as_str(), "https://app.example.com"] {
        let upload = app
            .client
            .post(app.url("/upload"))
            .header(ORIGIN, origin)
            .multipart(form())
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 202, "from {origin}");
    }
}

#[tokio::test]
async fn a_request_for_a_name_a_loopback_pixdrop_does_not_answer_to_is_a_421() {
    // DNS rebinding: a hostile name resolved to 127.0.0.1 carries that name in Host.
    let app = TestApp::spawn(Role::HttpOnly).await;
    let rebound = app
        .client
        .get(app.url("/limits"))
        .header(HOST, "evil.example:8080")
        .header("x-forwarded-host", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(code(rebound).await, (421, "unknown-host".into()));
    let local = app.client.get(app.url("/limits")).header(HOST, "localhost");
    assert_eq!(local.send().await.unwrap().status(), 200);
}
