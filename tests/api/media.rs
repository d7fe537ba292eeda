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

/// The signing key the signed-media tests configure, so they can sign URLs of their own.
const SIGNING_KEY: [u8; 32] = *b"test-media-signing-key-32-bytes!";

/// `url` with its query parameter `name` set to `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (path, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == name => format!("{key}={value}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[tokio::test]
async fn with_sign_in_on_media_urls_are_signed_private_and_refused_when_expired_forged_or_moved() {
    let app = TestApp::spawn_with(Role::All, |s| {
        crate::auth::with_tokens(s);
        s.media.signing_key = Some(hex::encode(SIGNING_KEY));
    })
    .await;
    let alice = crate::auth::As::new(&app, crate::auth::ALICE);
    let id = alice.upload_ok(1).await.remove(0);
    let done = loop {
        let job = alice.json(&format!("/jobs/{id}")).await;
        if job["state"] == "completed" {
            break job;
        }
        assert_ne!(job["state"], "failed", "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let thumb = done["variants"][0]["url"].as_str().unwrap().to_owned();
    let large = done["variants"][1]["url"].as_str().unwrap().to_owned();
    let get = |url: String| {
        let request = app.client.get(app.url(&url));
        async move { request.send().await.unwrap() }
    };

    let response = get(thumb.clone()).await;
    assert_eq!(response.status(), 200);
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.starts_with("private, max-age="), "{cache}");
    let max_age: u64 = cache.rsplit('=').next().unwrap().parse().unwrap();
    assert!((3600..=5400).contains(&max_age), "{cache}");

    let refusals = [
        (
            "no signature",
            thumb.split('?').next().unwrap().to_owned(),
            "unsigned-media-url",
        ),
        (
            "forged",
            with_param(&thumb, "sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "bad-media-signature",
        ),
        (
            "expiry stretched",
            with_param(&thumb, "expires", "99999999999"),
            "bad-media-signature",
        ),
        // The thumb's signature on the large variant's path, and on the original's.
        (
            "path swapped",
            with_param(&large, "sig", thumb.rsplit("sig=").next().unwrap()),
            "bad-media-signature",
        ),
        (
            "signature reused on another file",
            format!(
                "{}?{}",
                done["original"]["url"]
                    .as_str()
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap(),
                thumb.split_once('?').unwrap().1
            ),
            "bad-media-signature",
        ),
        (
            "expired",
            {
                let path = thumb.split('?').next().unwrap();
                let past = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    - 1;
                let sig = pixdrop::auth::signing::UrlSigner::new(&SIGNING_KEY).sign(path, past);
                format!("{path}?expires={past}&sig={sig}")
            },
            "expired-media-url",
        ),
    ];
    for (case, url, code) in refusals {
        let response = get(url).await;
        assert_eq!(response.status(), 403, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{case}");
    }
    assert_eq!(get(large).await.status(), 200);
}

#[tokio::test]
async fn media_public_keeps_plain_immutable_urls_with_sign_in_on() {
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        crate::auth::with_tokens(s);
        s.media.public = true;
    })
    .await;
    let alice = crate::auth::As::new(&app, crate::auth::ALICE);
    let id = alice.upload_ok(1).await.remove(0);
    let job = alice.json(&format!("/jobs/{id}")).await;
    let url = job["original"]["url"].as_str().unwrap();
    assert!(!url.contains('?'), "{url}");
    let response = app.client.get(app.url(url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
}

#[tokio::test]
async fn media_originals_private_signs_the_original_and_none_hides_it() {
    // Without sign-in the variants stay public either way; the original is what carries the
    // photo's EXIF, GPS position included, so it can be kept to signed URLs or not served.
    for (setting, signed) in [("private", true), ("none", false)] {
        let app = TestApp::spawn_with(Role::All, |s| {
            s.media.originals = match setting {
                "private" => pixdrop::http::media::OriginalsAccess::Private,
                _ => pixdrop::http::media::OriginalsAccess::None,
            };
        })
        .await;
        let id = app.upload_one(jpeg(80, 60)).await;
        let done = app.wait_for(&id, &["completed"]).await;
        let thumb = done["variants"][0]["url"].as_str().unwrap();
        assert!(!thumb.contains('?'), "variants stay public: {thumb}");
        assert_eq!(
            app.client
                .get(app.url(thumb))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );

        let sha = done["original"]["sha256"].as_str().unwrap();
        let plain = app.url(&format!("/media/originals/{}/{sha}.jpg", &sha[..2]));
        let direct = app.client.get(&plain).send().await.unwrap();
        match done["original"]["url"].as_str() {
            Some(url) => {
                assert!(signed, "{setting}: {url}");
                assert!(url.contains("sig="), "{url}");
                let response = app.client.get(app.url(url)).send().await.unwrap();
                assert_eq!(response.status(), 200);
                assert!(
                    response.headers()["cache-control"]
                        .to_str()
                        .unwrap()
                        .starts_with("private")
                );
                assert_eq!(direct.status(), 403, "{setting}: unsigned");
            }
            None => {
                assert!(!signed, "{setting}");
                assert_eq!(direct.status(), 404, "{setting}: not served at all");
            }
        }
    }
}
