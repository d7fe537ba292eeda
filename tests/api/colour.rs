//! What a job says of its original's colours and location, and of animated variants, as a client
//! reads it.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use moxcms::{ColorProfile, Layout, TransformOptions};
use pixdrop::app::Role;

use crate::helpers::TestApp;

/// A gradient photo converted to Adobe RGB and tagged so, as a camera saves it.
fn adobe_rgb_jpeg() -> Vec<u8> {
    let (w, h) = (120u32, 80u32);
    let srgb: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 2) as u8, (100 + y) as u8, 60]
        })
        .collect();
    let adobe = ColorProfile::new_adobe_rgb();
    let transform = ColorProfile::new_srgb()
        .create_transform_8bit(
            Layout::Rgb,
            &adobe,
            Layout::Rgb,
            TransformOptions::default(),
        )
        .unwrap();
    let mut pixels = vec![0; srgb.len()];
    transform.transform(&srgb, &mut pixels).unwrap();
    let mut out = Cursor::new(Vec::new());
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    encoder.set_icc_profile(adobe.encode().unwrap()).unwrap();
    encoder
        .write_image(&pixels, w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out.into_inner()
}

#[tokio::test]
async fn a_tagged_photo_reports_its_profile_and_conversion_and_an_untagged_one_nothing() {
    let app = TestApp::spawn(Role::All).await;
    let id = app.upload_one(adobe_rgb_jpeg()).await;
    let done = app.wait_for(&id, &["completed"]).await;
    let original = &done["original"];
    assert!(
        original["color_profile"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{original}"
    );
    assert_eq!(original["color_converted"], true);
    assert_eq!(original["has_location"], false);
    assert_eq!(done["warnings"], serde_json::json!([]));

    let plain = app.upload_one(crate::helpers::jpeg(40, 30)).await;
    let done = app.wait_for(&plain, &["completed"]).await;
    assert_eq!(done["original"]["color_profile"], serde_json::Value::Null);
    assert_eq!(done["original"]["color_converted"], false);
}

#[tokio::test]
async fn an_animated_gif_is_served_as_animated_webp_variants() {
    let app = TestApp::spawn(Role::All).await;
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        for shade in [0u8, 120, 240] {
            let frame = image::RgbaImage::from_pixel(40, 30, image::Rgba([shade, 60, 200, 255]));
            let delay = image::Delay::from_numer_denom_ms(90, 1);
            encoder
                .encode_frame(image::Frame::from_parts(frame, 0, 0, delay))
                .unwrap();
        }
    }
    let response = app.upload(vec![("file", "loop.gif", gif)]).await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["jobs"][0]["id"].as_str().unwrap();
    let done = app.wait_for(id, &["completed"]).await;
    for variant in done["variants"].as_array().unwrap() {
        assert_eq!(variant["animated"], true, "{variant}");
        let url = app.url(variant["url"].as_str().unwrap());
        let webp = app
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(webp.windows(4).any(|w| w == b"ANIM"), "an animated WebP");
    }
}
