//! Animations in, animations out: an animated GIF or WebP becomes an animated WebP variant with
//! the same frames and durations; one over the frame limits becomes its first frame, with a note.

use std::io::Cursor;

use image::AnimationDecoder;

use super::fixtures::{process_with, spec};
use crate::pipeline::{Fit, Limits};

/// An animated GIF, 64x48, one frame per duration, each a different colour with a moving square.
fn animated_gif(durations: &[u32]) -> Vec<u8> {
    animated_gif_sized(durations, 64, 48)
}

fn animated_gif_sized(durations: &[u32], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        for (i, ms) in durations.iter().enumerate() {
            let i = i as u32;
            let buffer = image::RgbaImage::from_fn(width, height, |x, y| {
                let inside = x / 8 == i % 8 && y < 16;
                image::Rgba(if inside {
                    [250, 250, 250, 255]
                } else {
                    [(i * 50) as u8, 90, 160, 255]
                })
            });
            let delay = image::Delay::from_numer_denom_ms(*ms, 1);
            encoder
                .encode_frame(image::Frame::from_parts(buffer, 0, 0, delay))
                .unwrap();
        }
    }
    out
}

/// The durations of an animated WebP's frames, as a browser reads them.
fn webp_durations(webp: &[u8]) -> Vec<u32> {
    image::codecs::webp::WebPDecoder::new(Cursor::new(webp))
        .unwrap()
        .into_frames()
        .map(|frame| {
            let (numer, denom) = frame.unwrap().delay().numer_denom_ms();
            numer / denom
        })
        .collect()
}

#[test]
fn an_animated_gif_becomes_an_animated_webp_with_its_frames_and_durations() {
    let durations = [80, 120, 40, 200, 60];
    let specs = [
        spec("thumb", 32, 32, Fit::Inside),
        spec("large", 640, 640, Fit::Inside),
    ];
    let (outcome, received) = process_with(&animated_gif(&durations), &specs, &Limits::default());
    let processed = outcome.unwrap();
    for (variant, (name, webp)) in processed.variants.iter().zip(&received) {
        assert!(variant.animated, "{name}");
        assert_eq!(webp_durations(webp), durations, "{name}");
    }
    assert_eq!(
        (processed.variants[0].width, processed.variants[0].height),
        (32, 24)
    );
    assert_eq!(
        (processed.variants[1].width, processed.variants[1].height),
        (64, 48)
    );
    assert!(processed.original.warnings.is_empty());

    // And an animated WebP in (the large variant just made) comes out the same way.
    let (outcome, received) = process_with(&received[1].1, &specs[..1], &Limits::default());
    assert!(outcome.unwrap().variants[0].animated);
    assert_eq!(webp_durations(&received[0].1), durations);
}

#[test]
fn an_animation_over_the_limits_becomes_its_first_frame_with_a_note() {
    let gif = animated_gif(&[100, 100, 100, 100]);
    let specs = [spec("thumb", 32, 32, Fit::Inside)];
    for (limits, why) in [
        (
            Limits {
                max_frames: 3,
                ..Limits::default()
            },
            "frames",
        ),
        (
            Limits {
                max_animation_pixels: 3 * 64 * 48,
                ..Limits::default()
            },
            "megapixels",
        ),
    ] {
        let (outcome, received) = process_with(&gif, &specs, &limits);
        let processed = outcome.unwrap();
        assert!(!processed.variants[0].animated, "{why}");
        let webp = &received[0].1;
        assert!(
            !webp.windows(4).any(|w| w == b"ANIM"),
            "{why}: a still WebP"
        );
        assert!(image::load_from_memory(webp).is_ok(), "{why}");
        let warnings = &processed.original.warnings;
        assert!(
            warnings.len() == 1 && warnings[0].contains(why) && warnings[0].contains("first frame"),
            "{warnings:?}"
        );
    }
    // A GIF of one frame is a still image, with nothing to say.
    let (outcome, _) = process_with(&animated_gif(&[100]), &specs, &Limits::default());
    let processed = outcome.unwrap();
    assert!(!processed.variants[0].animated && processed.original.warnings.is_empty());
}

#[test]
fn a_long_small_animation_is_estimated_at_the_size_it_is_resized_to() {
    // 300 frames of 16x12: megabytes (mostly the still variant's buffers every job reserves),
    // not the gigabytes that frames times the variants' boxes would be.
    let gif = animated_gif_sized(&[40; 300], 16, 12);
    let specs = crate::pipeline::VariantSpec::defaults();
    let probe = crate::pipeline::probe(Cursor::new(&gif), &Limits::default(), &specs).unwrap();
    assert_eq!(probe.frames, 300);
    assert!(
        probe.memory_bytes < 32 << 20,
        "{} bytes",
        probe.memory_bytes
    );
}
