//! Media are served with their type, validators, ranges and forever-caching.

use pixdrop::app::Role;
use serde_json::Value;

use crate::helpers::{TestApp, jpeg};

#[tokio::test]
async fn variants_and_originals_are_served_with_caching_etag_and_range_support() {
    let app = TestApp::spawn(Role::All).await;
    let original = jpeg(800, 600);
    let response = app.upload(vec![("file", "p.jpg", original.clone())]).await;
    let body: Value = response.json().await.unwrap();
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    let done = app.wait_for(&id, &["completed", "failed"]).await;
    let thumb = done["variants"][0]["url"].as_str().unwrap();

    let response = app.client.get(app.url(thumb)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/webp");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(
        bytes.len() as u64,
        done["variants"][0]["bytes"].as_u64().unwrap()
    );

    let cached = app
        .client
        .get(app.url(thumb))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let part = app
        .client
        .get(app.url(thumb))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 10);

    let original_url = done["original"]["url"].as_str().unwrap();
    let response = app.client.get(app.url(original_url)).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.bytes().await.unwrap().to_vec(), original);
}
