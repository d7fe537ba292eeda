//! What a job says of its original's colours and location, as a client reads it.

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
