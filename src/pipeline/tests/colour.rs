//! Colour management and metadata, on fixtures the tests make themselves: an sRGB "photo" is
//! converted to Adobe RGB and to Display P3 with `moxcms`, tagged with that profile and saved as
//! JPEG, PNG and WebP; decoded, each must come back close to the sRGB original. Without the
//! conversion they are far from it, which the tests also show, so they cannot pass by doing
//! nothing. Then: profiles that are corrupt or lie, and EXIF locations that never reach a variant.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use moxcms::{ColorProfile, Layout, TransformOptions};

use super::fixtures::{process_bytes, spec, splice_after_soi};
use crate::pipeline::{Fit, Limits, decode};

/// Saturated flowers on green leaves under a blue sky, as smooth gradients: colours at the edge
/// of sRGB, where a wrong profile shows most.
fn srgb_photo() -> RgbImage {
    RgbImage::from_fn(96, 64, |x, y| {
        let (fx, fy) = (x as f32 / 95.0, y as f32 / 63.0);
        Rgb(if y < 20 {
            [(40.0 + 60.0 * fx) as u8, (120.0 + 60.0 * fx) as u8, 235]
        } else if x < 48 {
            [
                (230.0 + 25.0 * fy) as u8,
                (20.0 + 40.0 * fx) as u8,
                (90.0 * fy) as u8,
            ]
        } else {
            [
                (30.0 + 50.0 * fy) as u8,
                (150.0 + 80.0 * fx) as u8,
                (40.0 * fx) as u8,
            ]
        })
    })
}

/// `image`'s pixels converted from sRGB to `profile`'s colour space.
fn convert(image: &RgbImage, profile: &ColorProfile) -> RgbImage {
    let transform = ColorProfile::new_srgb()
        .create_transform_8bit(
            Layout::Rgb,
            profile,
            Layout::Rgb,
            TransformOptions::default(),
        )
        .unwrap();
    let mut out = vec![0; image.as_raw().len()];
    transform.transform(image.as_raw(), &mut out).unwrap();
    RgbImage::from_raw(image.width(), image.height(), out).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Container {
    Jpeg,
    Png,
    WebP,
}

/// `image` saved as `container`, tagged with `icc` (when given).
fn save(image: &RgbImage, container: Container, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let (w, h, data) = (image.width(), image.height(), image.as_raw());
    let color = ExtendedColorType::Rgb8;
    match container {
        Container::Jpeg => {
            let mut encoder = JpegEncoder::new_with_quality(&mut out, 95);
            if let Some(icc) = icc {
                encoder.set_icc_profile(icc).unwrap();
            }
            encoder.write_image(data, w, h, color).unwrap();
        }
        Container::Png => {
            let mut encoder = PngEncoder::new(&mut out);
            if let Some(icc) = icc {
                encoder.set_icc_profile(icc).unwrap();
            }
            encoder.write_image(data, w, h, color).unwrap();
        }
        Container::WebP => {
            let mut encoder = WebPEncoder::new_lossless(&mut out);
            if let Some(icc) = icc {
                encoder.set_icc_profile(icc).unwrap();
            }
            encoder.write_image(data, w, h, color).unwrap();
        }
    }
    out.into_inner()
}

/// Mean absolute difference per channel, over every pixel.
fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let total: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.len() as f64
}

#[test]
fn wide_gamut_photos_in_every_container_come_out_as_their_srgb_original() {
    let reference = srgb_photo();
    for (name, profile) in [
        ("Adobe RGB", ColorProfile::new_adobe_rgb()),
        ("Display P3", ColorProfile::new_display_p3()),
    ] {
        let wide = convert(&reference, &profile);
        // Shown as if sRGB, these numbers are visibly off: what the conversion must undo.
        let untreated = mean_difference(wide.as_raw(), reference.as_raw());
        assert!(
            untreated > 4.0,
            "{name}: the fixture differs from sRGB ({untreated:.2})"
        );
        let icc = profile.encode().unwrap();
        for container in [Container::Jpeg, Container::Png, Container::WebP] {
            let bytes = save(&wide, container, Some(icc.clone()));
            let decoded = decode(Cursor::new(bytes), &Limits::default()).unwrap();
            let difference = mean_difference(decoded.pixels(), reference.as_raw());
            // JPEG's own loss adds a little; the lossless containers come back within rounding.
            let allowed = if matches!(container, Container::Jpeg) {
                3.0
            } else {
                1.0
            };
            assert!(
                difference < allowed,
                "{name} in {container:?}: mean difference {difference:.2} (untreated {untreated:.2})"
            );
            assert!(decoded.colour().converted, "{name} in {container:?}");
            assert!(decoded.warnings().is_empty(), "{name} in {container:?}");
        }
    }
}

#[test]
fn srgb_tagged_and_untagged_photos_keep_their_pixels() {
    let reference = srgb_photo();
    let srgb = ColorProfile::new_srgb().encode().unwrap();
    for icc in [None, Some(srgb)] {
        let tagged = icc.is_some();
        let bytes = save(&reference, Container::Png, icc);
        let decoded = decode(Cursor::new(bytes), &Limits::default()).unwrap();
        assert_eq!(decoded.pixels(), reference.as_raw(), "tagged: {tagged}");
        assert!(!decoded.colour().converted);
    }
}

#[test]
fn a_corrupt_or_lying_profile_is_taken_as_srgb_with_a_warning_never_a_failure() {
    let reference = srgb_photo();
    let grey_profile = ColorProfile::new_gray_with_gamma(2.2).encode().unwrap();
    let mut truncated = ColorProfile::new_adobe_rgb().encode().unwrap();
    truncated.truncate(100);
    for (what, icc) in [
        ("garbage", b"this is not an ICC profile".to_vec()),
        ("truncated", truncated),
        ("a grey profile on RGB pixels", grey_profile),
    ] {
        for container in [Container::Png, Container::WebP] {
            let bytes = save(&reference, container, Some(icc.clone()));
            let (received, processed) =
                process_bytes(&bytes, &[spec("thumb", 32, 32, Fit::Inside)]);
            assert_eq!(
                received.len(),
                1,
                "{what} in {container:?}: the variant is made"
            );
            let warnings = &processed.original.warnings;
            assert_eq!(warnings.len(), 1, "{what} in {container:?}: {warnings:?}");
            assert!(warnings[0].contains("taken as sRGB"), "{warnings:?}");
            let decoded = decode(Cursor::new(bytes), &Limits::default()).unwrap();
            assert_eq!(
                decoded.pixels(),
                reference.as_raw(),
                "{what}: pixels as they were"
            );
        }
    }
}

/// An EXIF APP1 segment with a GPS IFD holding a latitude.
fn exif_with_gps() -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    // GPS IFD pointer, to just after IFD0 (8 + 2 + 12 + 4 = 26).
    tiff.extend(0x8825u16.to_le_bytes());
    tiff.extend(4u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(26u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    // GPS IFD: GPSLatitudeRef "N", GPSLatitude (offset unused by the check).
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(0x0001u16.to_le_bytes());
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(2u32.to_le_bytes());
    tiff.extend(u32::from_le_bytes(*b"N\0\0\0").to_le_bytes());
    tiff.extend(0x0002u16.to_le_bytes());
    tiff.extend(5u16.to_le_bytes());
    tiff.extend(3u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((payload.len() + 2) as u16).to_be_bytes());
    segment.extend(payload);
    segment
}

/// The four-letter chunk names of a WebP (RIFF) file.
fn webp_chunks(webp: &[u8]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut at = 12;
    while at + 8 <= webp.len() {
        chunks.push(String::from_utf8_lossy(&webp[at..at + 4]).into_owned());
        let len = u32::from_le_bytes(webp[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8 + len + len % 2;
    }
    chunks
}

#[test]
fn a_photo_with_a_gps_position_says_so_and_no_variant_carries_exif() {
    let photo = splice_after_soi(
        &save(&srgb_photo(), Container::Jpeg, None),
        &exif_with_gps(),
    );
    let specs = [
        spec("thumb", 32, 32, Fit::Inside),
        spec("large", 80, 80, Fit::Inside),
    ];
    let (received, processed) = process_bytes(&photo, &specs);
    assert!(processed.original.has_location);
    assert_eq!(received.len(), 2);
    for (name, webp) in &received {
        let chunks = webp_chunks(webp);
        assert!(
            !chunks.iter().any(|c| c == "EXIF" || c == "XMP "),
            "{name}: {chunks:?}"
        );
    }
    let plain = save(&srgb_photo(), Container::Jpeg, None);
    assert!(!process_bytes(&plain, &specs).1.original.has_location);
}

#[test]
fn cmyk_and_ycck_jpegs_come_out_as_their_rgb_original_and_grey_stays_grey() {
    // Saved as printers' JPEGs are: CMYK with black pulled out of the colours, in Adobe's inverted
    // form, plain and as YCCK.
    let reference = srgb_photo();
    let cmyk: Vec<u8> = reference
        .pixels()
        .flat_map(|p| {
            // The usual formula: K from the brightest channel, the inks scaled by what is left.
            let max = p.0.iter().copied().max().unwrap_or(0);
            let ink = |v: u8| {
                if max == 0 {
                    0
                } else {
                    (255 - (u32::from(v) * 255 / u32::from(max))) as u8
                }
            };
            [ink(p[0]), ink(p[1]), ink(p[2]), 255 - max]
        })
        .collect();
    let (w, h) = (reference.width() as u16, reference.height() as u16);
    for color in [
        jpeg_encoder::ColorType::Cmyk,
        jpeg_encoder::ColorType::CmykAsYcck,
    ] {
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 95)
            .encode(&cmyk, w, h, color)
            .unwrap();
        let decoded = decode(Cursor::new(bytes), &Limits::default()).unwrap();
        let difference = mean_difference(decoded.pixels(), reference.as_raw());
        assert!(
            difference < 4.0,
            "{color:?}: mean difference {difference:.2}"
        );
    }
    let grey: Vec<u8> = reference.pixels().map(|p| p[1]).collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95)
        .encode(&grey, w, h, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let decoded = decode(Cursor::new(bytes), &Limits::default()).unwrap();
    assert!(
        decoded
            .pixels()
            .chunks(3)
            .all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey stays grey"
    );
}

/// `png` with `chunks` put right after its IHDR, where colour chunks go.
fn after_ihdr(png: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let ihdr_end = 8 + 25;
    let mut out = png[..ihdr_end].to_vec();
    for chunk in chunks {
        out.extend(chunk);
    }
    out.extend(&png[ihdr_end..]);
    out
}

#[test]
fn png_gamma_and_chromaticities_are_applied_unless_srgb_says_otherwise() {
    use super::fixtures::png_chunk;
    let reference = srgb_photo();
    let gamma = |value: u32| png_chunk(b"gAMA", &value.to_be_bytes());
    let chrm = |values: [u32; 8]| {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        png_chunk(b"cHRM", &data)
    };
    // An old Mac's gamma 1.8 with sRGB's primaries; and Adobe RGB's primaries at gamma 2.2.
    let mut mac = ColorProfile::new_srgb();
    // Its curves, not the sRGB transfer its CICP tag would name.
    mac.cicp = None;
    let curve = moxcms::ToneReprCurve::Parametric(vec![1.8]);
    (mac.red_trc, mac.green_trc, mac.blue_trc) =
        (Some(curve.clone()), Some(curve.clone()), Some(curve));
    let adobe_chrm = [31270, 32900, 64000, 33000, 21000, 71000, 15000, 6000];
    for (what, profile, chunks) in [
        ("gAMA 1.8", mac, vec![gamma(55556)]),
        (
            "Adobe cHRM",
            ColorProfile::new_adobe_rgb(),
            vec![gamma(45455), chrm(adobe_chrm)],
        ),
    ] {
        let wide = convert(&reference, &profile);
        let untreated = mean_difference(wide.as_raw(), reference.as_raw());
        assert!(
            untreated > 4.0,
            "{what}: the fixture differs from sRGB ({untreated:.2})"
        );
        let png = after_ihdr(&save(&wide, Container::Png, None), &chunks);
        let decoded = decode(Cursor::new(png.clone()), &Limits::default()).unwrap();
        let difference = mean_difference(decoded.pixels(), reference.as_raw());
        assert!(difference < 1.5, "{what}: mean difference {difference:.2}");
        assert!(decoded.colour().converted, "{what}");
        // An sRGB chunk overrides them: the numbers are then taken as they are.
        let overridden = after_ihdr(
            &save(&wide, Container::Png, None),
            &[png_chunk(b"sRGB", &[0]), chunks[0].clone()],
        );
        let decoded = decode(Cursor::new(overridden), &Limits::default()).unwrap();
        assert_eq!(decoded.pixels(), wide.as_raw(), "{what} under sRGB");
    }
    // Nonsense is a warning, never a failure: an impossible gamma, primaries in a line.
    let collinear = [31270, 32900, 10000, 10000, 20000, 20000, 30000, 30000];
    for (what, chunks) in [
        ("gAMA", vec![gamma(1)]),
        ("cHRM", vec![gamma(55556), chrm(collinear)]),
        ("zeroed cHRM", vec![chrm([0; 8])]),
    ] {
        let png = after_ihdr(&save(&reference, Container::Png, None), &chunks);
        let (_, processed) = process_bytes(&png, &[spec("thumb", 32, 32, Fit::Inside)]);
        let warnings = &processed.original.warnings;
        assert!(
            warnings.len() == 1 && warnings[0].contains(what.split(' ').next_back().unwrap()),
            "{what}: {warnings:?}"
        );
    }
}
