//! What `process` leaves behind and reports: sizes per fit, file names, progress steps, and the
//! same bytes every time.

use image::{DynamicImage, GenericImageView, Rgb, RgbImage};

use super::fixtures::{
    Received, encode, jpeg, near, noise, process_bytes, read_webp, spec, webp_named,
};
use crate::pipeline::{Fit, ImageFormat, Limits, Step, VariantSpec, process};

#[test]
fn the_default_variants_of_a_photo_fit_inside_320_and_1280() {
    // Proves the defaults, the reported sizes and names, and that `bytes` is the WebP's size.
    let photo = jpeg(&noise(1600, 1200));
    let (received, processed) = process_bytes(&photo, &VariantSpec::defaults());
    assert_eq!(processed.original.format, ImageFormat::Jpeg);
    assert_eq!(
        (processed.original.width, processed.original.height),
        (1600, 1200)
    );
    let sizes: Vec<_> = processed
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height))
        .collect();
    assert_eq!(sizes, [("thumb", 320, 240), ("large", 1280, 960)]);
    let names: Vec<&str> = received.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["thumb", "large"],
        "each variant handed over once, in order"
    );
    for variant in &processed.variants {
        assert_eq!(
            variant.bytes,
            webp_named(&received, &variant.name).len() as u64
        );
        assert_eq!(
            read_webp(&received, &variant.name).dimensions(),
            (variant.width, variant.height)
        );
    }
}

#[test]
fn an_image_smaller_than_the_box_is_never_upscaled() {
    // Proves a small upload keeps its size in every default variant.
    let small = encode(
        &DynamicImage::ImageRgb8(noise(100, 50)),
        image::ImageFormat::Png,
    );
    let (_received, processed) = process_bytes(&small, &VariantSpec::defaults());
    for variant in &processed.variants {
        assert_eq!(
            (variant.width, variant.height),
            (100, 50),
            "{}",
            variant.name
        );
    }
}

#[test]
fn cover_fit_crops_the_centre_to_exactly_the_box() {
    // Proves a cover variant is exactly the box size and shows the middle, not the sides.
    let striped = RgbImage::from_fn(400, 200, |x, _| {
        Rgb(match x {
            0..100 => [255, 0, 0],
            100..300 => [0, 200, 0],
            _ => [0, 0, 255],
        })
    });
    let bytes = encode(&DynamicImage::ImageRgb8(striped), image::ImageFormat::Png);
    let (received, processed) = process_bytes(&bytes, &[spec("square", 100, 100, Fit::Cover)]);
    let variant = &processed.variants[0];
    assert_eq!((variant.width, variant.height), (100, 100));
    let out = read_webp(&received, &variant.name);
    for x in [0, 50, 99] {
        let px = out.get_pixel(x, 50);
        assert!(
            near(&px.0[..3], &[0, 200, 0], 40),
            "column {x} is {px:?}, not the green middle"
        );
    }
}

#[test]
fn cover_fit_on_a_small_image_keeps_the_box_shape_without_upscaling() {
    // Proves cover crops a too-small image to the box's aspect at its own scale.
    let bytes = encode(
        &DynamicImage::ImageRgb8(noise(200, 100)),
        image::ImageFormat::Png,
    );
    let (_received, processed) = process_bytes(&bytes, &[spec("square", 320, 320, Fit::Cover)]);
    let variant = &processed.variants[0];
    assert_eq!((variant.width, variant.height), (100, 100));
}

#[test]
fn processing_the_same_source_twice_yields_identical_files() {
    // Proves a retried job rewrites byte-for-byte the same variants, and reports the same.
    let photo = jpeg(&noise(300, 200));
    let specs = [
        spec("a", 120, 120, Fit::Inside),
        spec("b", 50, 50, Fit::Cover),
    ];
    let run = || {
        let mut received = Received::new();
        let source = std::io::Cursor::new(&photo);
        let processed = process(
            source,
            &specs,
            &Limits::default(),
            &crate::pipeline::Control::unlimited(),
            &mut received,
            &mut |_| {},
        )
        .unwrap();
        (processed, received)
    };
    let (first, first_bytes) = run();
    let (second, second_bytes) = run();
    assert_eq!(first, second);
    assert_eq!(first_bytes, second_bytes);
    // Only the two variants were handed over, once each.
    assert_eq!(first_bytes.len(), 2);
}

#[test]
fn progress_is_reported_as_decoded_then_each_variant_in_order() {
    // Proves the steps a caller relays: the oriented size first, then one per variant.
    let bytes = jpeg(&noise(64, 48));
    let mut steps = Vec::new();
    let specs = [
        spec("one", 32, 32, Fit::Inside),
        spec("two", 16, 16, Fit::Cover),
    ];
    let mut received = Received::new();
    let source = std::io::Cursor::new(bytes);
    process(
        source,
        &specs,
        &Limits::default(),
        &crate::pipeline::Control::unlimited(),
        &mut received,
        &mut |step| steps.push(step),
    )
    .unwrap();
    assert_eq!(
        steps,
        [
            Step::Decoded {
                width: 64,
                height: 48
            },
            Step::VariantWritten {
                name: "one".into(),
                index: 0,
                total: 2
            },
            Step::VariantWritten {
                name: "two".into(),
                index: 1,
                total: 2
            },
        ]
    );
    assert_eq!(
        received.len(),
        2,
        "each step follows its variant's hand-over"
    );
}
