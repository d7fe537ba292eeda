//! Uploads that must fail, and fail well: the right code, the right verdict on retrying, a
//! message a person understands, and no work or memory spent on what was refused.

use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};

use super::alloc_probe::largest_allocation_during;
use super::fixtures::{
    Received, encode, jpeg, noise, png_chunk, png_claiming, process_with, pseudo_random_bytes,
};
use crate::pipeline::{ImageFormat, Limits, PipelineError, SizeLimit, VariantSpec, process};

/// Processes `bytes` with the default variants and limits, expecting failure.
fn fail(bytes: &[u8]) -> PipelineError {
    let (processed, received) = process_with(bytes, &VariantSpec::defaults(), &Limits::default());
    let err = processed.unwrap_err();
    assert!(
        received.is_empty(),
        "a refused upload handed variants to the sink"
    );
    err
}

#[test]
fn a_truncated_jpeg_fails_permanently_as_truncated() {
    // Proves a cut-off JPEG is refused (the decoder alone would grey-fill it) with a clear code.
    let whole = jpeg(&noise(64, 64));
    let err = fail(&whole[..whole.len() * 6 / 10]);
    assert!(
        matches!(
            err,
            PipelineError::Truncated {
                format: ImageFormat::Jpeg
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "truncated-image");
    assert!(err.is_permanent());
    assert!(err.to_string().contains("incomplete"), "{err}");
}

#[test]
fn a_truncated_png_fails_permanently_as_truncated() {
    // Proves truncation is recognised from the decoder's end-of-file error in other formats.
    let whole = encode(
        &DynamicImage::ImageRgb8(noise(64, 64)),
        image::ImageFormat::Png,
    );
    let err = fail(&whole[..whole.len() / 2]);
    assert_eq!(err.code(), "truncated-image", "{err:?}");
    assert!(err.is_permanent());
}

#[test]
fn random_bytes_fail_permanently_as_unsupported() {
    // Proves a file that is no known format is refused up front, saying so plainly.
    let err = fail(&pseudo_random_bytes(4096, 11));
    assert_eq!(err.code(), "unsupported-format");
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "the file is not an image we recognise, which we don't accept; \
         upload a JPEG, PNG, GIF, WebP, BMP or TIFF image"
    );
}

#[test]
fn a_pdf_or_heic_upload_is_refused_by_name() {
    // Proves the message tells the user what they actually sent.
    let err = fail(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n");
    assert!(matches!(
        err,
        PipelineError::UnsupportedFormat {
            detected: "application/pdf"
        }
    ));
    assert!(
        err.to_string()
            .starts_with("the file is a PDF document (application/pdf)"),
        "{err}"
    );
    let err = fail(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0");
    assert!(err.to_string().contains("HEIC"), "{err}");
}

#[test]
fn an_image_with_a_damaged_header_fails_permanently_as_corrupt() {
    // Proves malformed data inside a recognised format is "corrupt", not I/O or truncation.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    // Bit depth 7 does not exist; the CRC is right, so only the content is wrong.
    png.extend(png_chunk(b"IHDR", &[0, 0, 0, 8, 0, 0, 0, 8, 7, 2, 0, 0, 0]));
    png.extend(png_chunk(b"IEND", &[]));
    let err = fail(&png);
    assert_eq!(err.code(), "corrupt-image", "{err:?}");
    assert!(err.is_permanent());
    assert!(
        err.to_string().starts_with("the PNG file is damaged"),
        "{err}"
    );
}

#[test]
fn a_png_bomb_header_fails_fast_as_too_large_without_allocating_the_image() {
    // Proves limits are checked from the header: no 40 GB buffer, not even a large one.
    let bomb = png_claiming(100_000, 100_000, 8);
    let started = Instant::now();
    let (err, largest) = largest_allocation_during(|| fail(&bomb));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
    assert!(largest < 1 << 20, "allocated {largest} bytes in one go");
    assert!(matches!(
        err,
        PipelineError::TooLarge {
            width: 100_000,
            height: 100_000,
            limit: SizeLimit::Pixels { max: 50_000_000 }
        }
    ));
    assert_eq!(err.code(), "image-too-large");
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "image is 100000x100000 (10000 megapixels); the limit is 50 megapixels"
    );
}

#[test]
fn a_jpeg_header_claiming_a_huge_size_is_refused_before_decoding() {
    // Proves the same header-first check for JPEG, whose dimensions live in its SOF segment.
    let mut bomb = jpeg(&RgbImage::new(8, 8));
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]); // 65000 x 65000
    let (err, largest) = largest_allocation_during(|| fail(&bomb));
    assert!(largest < 1 << 20, "allocated {largest} bytes in one go");
    assert!(
        matches!(
            err,
            PipelineError::TooLarge {
                width: 65_000,
                height: 65_000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_source_that_cannot_be_read_is_a_transient_io_error() {
    // Proves trouble reading our own storage is retryable, unlike a bad upload.
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    impl std::io::Seek for Broken {
        fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
            Ok(0)
        }
    }
    let err = process(
        Broken,
        &[],
        &Limits::default(),
        &crate::pipeline::Control::unlimited(),
        &mut Received::new(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(err.code(), "io-error");
    assert!(!err.is_permanent());
    assert!(err.to_string().starts_with("could not read "), "{err}");
}

#[test]
fn a_sink_that_refuses_a_variant_is_a_transient_io_error_naming_it() {
    // Proves a full disk while storing is retryable and says which variant it stopped at.
    struct Full;
    impl crate::pipeline::VariantSink for Full {
        fn put(&mut self, _: &str, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("no space left"))
        }
    }
    let bytes = jpeg(&noise(32, 32));
    let err = process(
        std::io::Cursor::new(bytes),
        &VariantSpec::defaults(),
        &Limits::default(),
        &crate::pipeline::Control::unlimited(),
        &mut Full,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(err.code(), "io-error");
    assert!(!err.is_permanent());
    assert!(err.to_string().contains("'thumb'"), "{err}");
}
