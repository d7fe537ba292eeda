//! The page: embedded static files with a strict content security policy, and the limits it checks
//! files against.

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_page_is_served_with_a_content_security_policy() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = response.text().await.unwrap();
    assert!(html.contains("type=\"file\""), "a file picker");
    assert!(html.contains("/static/app.js"));

    // Monitoring and link checkers ask with HEAD.
    let head = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], headers["content-type"]);
}

#[tokio::test]
async fn static_files_are_revalidated_by_etag_and_unknown_ones_are_404() {
    let app = TestApp::spawn(Role::HttpOnly).await;
    let script = app
        .client
        .get(app.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let etag = script.headers()["etag"].clone();

    let again = app
        .client
        .get(app.url("/static/app.js"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    for path in ["/static/nope.js", "/static/../Cargo.toml", "/static/"] {
        let missing = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(
            missing.headers()["content-type"],
            "application/problem+json"
        );
    }
}

#[tokio::test]
async fn limits_mirror_the_configured_upload_limits() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        s.uploads.max_file_bytes = 1234;
        s.uploads.max_files = 3;
    })
    .await;
    let limits: Value = app
        .client
        .get(app.url("/limits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits["max_file_bytes"], 1234);
    assert_eq!(limits["max_files"], 3);
    let mimes: Vec<&str> = limits["mime_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(mimes.contains(&"image/jpeg") && mimes.contains(&"image/tiff"));
    assert_eq!(limits["variants"][0]["name"], "thumb");
}
