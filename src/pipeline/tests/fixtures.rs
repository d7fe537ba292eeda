//! Small images built in memory for the tests, and the byte-level builders needed to make the
//! awkward ones: EXIF segments, PNG chunks with real CRCs, truncated and hostile files.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, Rgb, RgbImage};

use crate::pipeline::{Limits, Processed, VariantSpec, process};

/// Encodes `image` with the `image` crate's encoder for `format`.
pub fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A high-quality JPEG, so colours survive well enough to be checked.
pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(image)
        .unwrap();
    out
}

/// `width` x `height` filled with `background`, with the `block` x `block` square at the top
/// left in `mark`.
pub fn marked_corner(
    width: u32,
    height: u32,
    block: u32,
    mark: [u8; 3],
    background: [u8; 3],
) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb(if x < block && y < block {
            mark
        } else {
            background
        })
    })
}

/// Noise, which compresses badly, so a JPEG of it has a long scan to cut into.
pub fn noise(width: u32, height: u32) -> RgbImage {
    let bytes = pseudo_random_bytes(width as usize * height as usize * 3, 7);
    RgbImage::from_raw(width, height, bytes).unwrap()
}

/// An EXIF APP1 segment holding only the Orientation tag, in either TIFF byte order.
pub fn exif_orientation_segment(orientation: u16, big_endian: bool) -> Vec<u8> {
    let u16_bytes = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32_bytes = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut tiff = Vec::new();
    tiff.extend(if big_endian { b"MM\0*" } else { b"II*\0" });
    tiff.extend(u32_bytes(8)); // IFD0 follows the 8-byte header
    tiff.extend(u16_bytes(1)); // one entry:
    tiff.extend(u16_bytes(0x0112)); // Orientation,
    tiff.extend(u16_bytes(3)); // type SHORT,
    tiff.extend(u32_bytes(1)); // one value,
    tiff.extend(u16_bytes(orientation)); // held in the first half of the 4-byte value field
    tiff.extend([0, 0]);
    tiff.extend(u32_bytes(0)); // no next IFD

    let length = u16::try_from(2 + b"Exif\0\0".len() + tiff.len()).unwrap();
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(length.to_be_bytes());
    segment.extend(b"Exif\0\0");
    segment.extend(tiff);
    segment
}

/// `jpeg` with `segment` spliced in right after SOI, where cameras put EXIF.
pub fn splice_after_soi(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    [&jpeg[..2], segment, &jpeg[2..]].concat()
}

/// A PNG chunk: length, type, data, CRC-32 of type and data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    chunk.extend(kind);
    chunk.extend(data);
    chunk.extend(crc32(&chunk[4..]).to_be_bytes());
    chunk
}

/// A PNG whose valid IHDR claims `width` x `height` RGBA, followed by a token IDAT: the shape of
/// a decompression bomb, minus the bomb.
pub fn png_claiming(width: u32, height: u32, bit_depth: u8) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([bit_depth, 6, 0, 0, 0]); // RGBA, deflate, adaptive filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00]));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// The CRC-32 PNG uses (ISO-HDLC), bit by bit: slow, short and obviously right.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Deterministic noise (xorshift), so a failing test fails the same way every time.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// What a test's sink received: each variant's WebP, by name, in order.
pub type Received = Vec<(String, Vec<u8>)>;

/// Processes `bytes` with `specs` and default limits into memory.
pub fn process_bytes(bytes: &[u8], specs: &[VariantSpec]) -> (Received, Processed) {
    let (processed, received) = process_with(bytes, specs, &Limits::default());
    (received, processed.unwrap())
}

/// Processes `bytes` with `specs` and `limits` into memory, with no memory bound; returns the
/// outcome and what the sink received either way.
pub fn process_with(
    bytes: &[u8],
    specs: &[VariantSpec],
    limits: &Limits,
) -> (Result<Processed, crate::pipeline::PipelineError>, Received) {
    let mut received = Received::new();
    let processed = process(
        Cursor::new(bytes),
        specs,
        limits,
        &crate::pipeline::Control::unlimited(),
        &mut received,
        &mut |_| {},
    );
    (processed, received)
}

/// The WebP the sink received under `name`.
pub fn webp_named<'a>(received: &'a Received, name: &str) -> &'a [u8] {
    let found = received.iter().rev().find(|(n, _)| n == name);
    &found
        .unwrap_or_else(|| panic!("no variant {name:?} received"))
        .1
}

/// Reads a WebP we made back into pixels.
pub fn read_webp(received: &Received, name: &str) -> DynamicImage {
    image::load_from_memory_with_format(webp_named(received, name), image::ImageFormat::WebP)
        .unwrap()
}

/// A spec that fails only on bad arguments, which tests don't pass.
pub fn spec(name: &str, width: u32, height: u32, fit: crate::pipeline::Fit) -> VariantSpec {
    VariantSpec::new(name, width, height, fit, 80.0).unwrap()
}

/// True if `pixel` is close to `expected` on every channel, allowing for lossy compression.
pub fn near(pixel: &[u8], expected: &[u8], tolerance: u8) -> bool {
    pixel
        .iter()
        .zip(expected)
        .all(|(&a, &b)| a.abs_diff(b) <= tolerance)
}

#[test]
fn the_crc_helper_matches_the_crc_every_png_iend_chunk_carries() {
    // Proves the bomb fixtures carry CRCs a PNG decoder accepts.
    assert_eq!(crc32(b"IEND"), 0xAE42_6082);
}
