//! JPEG specifics: whether a file is whole, and decoding it with libjpeg-turbo, at a reduced
//! scale when the variants allow (shrink-on-load).
//!
//! Whole: JPEG decoders are lenient: when the data stops mid-scan they fill the rest of the
//! picture with grey and report success. A half-uploaded photo must fail instead, with a code that
//! says so, so we walk the marker structure ourselves. It is a streaming scan over bytes already
//! in the page cache, a few milliseconds for a large photo, and it allocates nothing.
//!
//! Shrink-on-load: libjpeg-turbo can run its inverse DCT at 1/2, 1/4 or 1/8 of the size, which
//! skips most of the decode's arithmetic and memory for a photo far larger than its variants.
//! The factor leaves at least twice the pixels the largest variant needs, so the final resample
//! (Lanczos) still does the shaping, as libvips does. libjpeg-turbo decodes only YCbCr, RGB and
//! greyscale to RGB; CMYK and YCCK files (print workflows) go to `image`'s decoder.

use std::io::{self, BufRead, Read};

use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

use super::geometry::plan;
use super::spec::VariantSpec;

/// The largest denominator the variants allow: 1 (full size), 2, 4 or 8. `width` x `height` is
/// the size as displayed (after the EXIF orientation; the scale is the same on both sides).
pub(crate) fn shrink_for(width: u32, height: u32, specs: &[VariantSpec]) -> u32 {
    // How much each variant shrinks its crop of the source, on the side it shrinks least.
    let least = specs
        .iter()
        .map(|s| {
            let p = plan(width, height, s.fit(), s.max_width(), s.max_height());
            (p.crop.width / f64::from(p.width)).min(p.crop.height / f64::from(p.height))
        })
        .fold(f64::INFINITY, f64::min);
    if !least.is_finite() {
        return 1;
    }
    // Keep at least 2x for the resample after the scaled decode.
    [8, 4, 2]
        .into_iter()
        .find(|&d| least / f64::from(d) >= 2.0)
        .unwrap_or(1)
}

/// The size libjpeg-turbo decodes `width` x `height` to at 1/`shrink`.
pub(crate) fn shrunk(width: u32, height: u32, shrink: u32) -> (u32, u32) {
    (width.div_ceil(shrink), height.div_ceil(shrink))
}

/// Progressive scans a JPEG may have. A real photo has about ten; thousands of tiny scans are a
/// known way to make a small file take minutes to decode.
const MAX_SCANS: u32 = 500;

/// What [`decode_rgb`] made: rows of 8-bit RGB, no padding.
pub(crate) struct Decoded {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Decodes `jpeg` to RGB at 1/`shrink` of its size with libjpeg-turbo. `Ok(None)` when it is a
/// kind libjpeg-turbo does not turn into RGB (CMYK, YCCK, lossless), for `image` to decode.
pub(crate) fn decode_rgb(jpeg: &[u8], shrink: u32) -> Result<Option<Decoded>, String> {
    let mut decompressor = Decompressor::new().map_err(|e| e.to_string())?;
    let header = decompressor.read_header(jpeg).map_err(|e| e.to_string())?;
    let rgb_capable = matches!(
        header.colorspace,
        Colorspace::YCbCr | Colorspace::RGB | Colorspace::Gray
    );
    if !rgb_capable || header.is_lossless {
        return Ok(None);
    }
    let factor = ScalingFactor::new(1, shrink as usize);
    decompressor
        .set_scaling_factor(factor)
        .map_err(|e| e.to_string())?;
    decompressor
        .set_scan_limit(MAX_SCANS)
        .map_err(|e| e.to_string())?;
    let scaled = header.scaled(factor);
    let mut pixels = vec![0; scaled.width * scaled.height * 3];
    let image = Image {
        pixels: &mut pixels[..],
        width: scaled.width,
        pitch: scaled.width * 3,
        height: scaled.height,
        format: PixelFormat::RGB,
    };
    decompressor
        .decompress(jpeg, image)
        .map_err(|e| e.to_string())?;
    let side = |n: usize| u32::try_from(n).map_err(|_| "side out of range".to_string());
    Ok(Some(Decoded {
        pixels,
        width: side(scaled.width)?,
        height: side(scaled.height)?,
    }))
}

const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;

/// True if the stream, read from its start, reaches an EOI marker after the segments and scans
/// before it. Trailing bytes after EOI are fine (cameras append things). Malformed structure
/// counts as whole: telling a broken file from a cut one is the decoder's job.
pub(crate) fn reaches_end_marker(mut r: impl BufRead) -> io::Result<bool> {
    let mut pending = None;
    loop {
        let marker = match pending.take() {
            Some(marker) => marker,
            None => match next_marker(&mut r)? {
                Some(marker) => marker,
                None => return Ok(false),
            },
        };
        match marker {
            EOI => return Ok(true),
            // Markers that stand alone, without a length: SOI, TEM, RST0-7 (and a stray 0x00).
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => {}
            _ => {
                let mut len = [0; 2];
                if !read_all(&mut r, &mut len)? {
                    return Ok(false);
                }
                let Some(body) = u16::from_be_bytes(len).checked_sub(2) else {
                    return Ok(true);
                };
                if io::copy(&mut r.by_ref().take(u64::from(body)), &mut io::sink())?
                    < u64::from(body)
                {
                    return Ok(false);
                }
                if marker == SOS {
                    match skip_entropy_coded_data(&mut r)? {
                        Some(marker) => pending = Some(marker),
                        None => return Ok(false),
                    }
                }
            }
        }
    }
}

/// Finds the next marker byte: skips to a 0xFF (decoders skip stray bytes between segments too),
/// then past any 0xFF fill bytes. `None` at end of data.
fn next_marker(r: &mut impl BufRead) -> io::Result<Option<u8>> {
    let mut seen_ff = false;
    let mut byte = [0; 1];
    loop {
        if !read_all(r, &mut byte)? {
            return Ok(None);
        }
        match (seen_ff, byte[0]) {
            (_, 0xFF) => seen_ff = true,
            (true, marker) => return Ok(Some(marker)),
            (false, _) => {}
        }
    }
}

/// Skips a scan's compressed data, which ends at the first marker that is neither a stuffed zero
/// (0xFF00) nor a restart marker. Returns that marker, or `None` at end of data.
fn skip_entropy_coded_data(r: &mut impl BufRead) -> io::Result<Option<u8>> {
    let mut after_ff = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let mut found = None;
        let mut i = 0;
        while i < buf.len() {
            if after_ff {
                let byte = buf[i];
                i += 1;
                match byte {
                    0xFF => {}
                    0x00 | 0xD0..=0xD7 => after_ff = false,
                    marker => {
                        found = Some(marker);
                        break;
                    }
                }
            } else {
                match buf[i..].iter().position(|&b| b == 0xFF) {
                    Some(at) => {
                        i += at + 1;
                        after_ff = true;
                    }
                    None => i = buf.len(),
                }
            }
        }
        r.consume(i);
        if found.is_some() {
            return Ok(found);
        }
    }
}

/// `read_exact` that reports a short read as `false` rather than an error.
fn read_all(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::spec::Fit;

    #[test]
    fn the_shrink_leaves_at_least_twice_the_largest_variant() {
        // Proves the factor: 2x margin kept on the side that shrinks least, for both fits, and
        // no shrink without variants or when a variant is near full size.
        let large = VariantSpec::large();
        let both = VariantSpec::defaults();
        assert_eq!(shrink_for(5184, 3456, &both), 2);
        assert_eq!(shrink_for(2560, 1920, &both), 1);
        assert_eq!(shrink_for(12_000, 9_000, std::slice::from_ref(&large)), 4);
        assert_eq!(shrink_for(30_000, 20_000, &[large]), 8);
        assert_eq!(shrink_for(5184, 3456, &[]), 1);
        let thumb = VariantSpec::thumb();
        assert_eq!(shrink_for(5184, 3456, &[thumb]), 8);
        // A square cover crop of a wide photo shrinks the short side: 3456 / 1280.
        let square = VariantSpec::new("sq", 1280, 1280, Fit::Cover, 80.0).unwrap();
        assert_eq!(shrink_for(5184, 3456, &[square]), 1);
        // A wide box on a wider photo: the height limits it, 1000 / 250.
        let wide = VariantSpec::new("w", 2000, 250, Fit::Inside, 80.0).unwrap();
        assert_eq!(shrink_for(4000, 1000, &[wide]), 2);
    }

    #[test]
    fn libjpeg_turbo_decodes_at_the_shrunk_size_and_declines_cmyk() {
        // Proves the scaled decode's size matches `shrunk` (odd sides round up), and that a CMYK
        // file is left to the other decoder rather than decoded wrongly.
        let rgb = image::RgbImage::from_fn(101, 67, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&rgb)
            .unwrap();
        for shrink in [1, 2, 4, 8] {
            let decoded = decode_rgb(&jpeg, shrink).unwrap().unwrap();
            assert_eq!((decoded.width, decoded.height), shrunk(101, 67, shrink));
            assert_eq!(
                decoded.pixels.len(),
                (decoded.width * decoded.height * 3) as usize
            );
        }
        let mut cmyk = Vec::new();
        jpeg_encoder::Encoder::new(&mut cmyk, 90)
            .encode(&[0u8; 8 * 8 * 4], 8, 8, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        assert!(decode_rgb(&cmyk, 1).unwrap().is_none());
        assert!(decode_rgb(b"not a jpeg", 1).is_err());
    }

    /// SOI, an APP0, two scans (as in a progressive JPEG) with stuffed bytes and a restart
    /// marker in their data, then EOI.
    fn whole_jpeg_structure() -> Vec<u8> {
        let mut data = vec![0xFF, 0xD8];
        data.extend([0xFF, 0xE0, 0x00, 0x06, b'J', b'F', b'I', b'F']);
        for _ in 0..2 {
            data.extend([0xFF, SOS, 0x00, 0x04, 0x01, 0x02]);
            data.extend([
                0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0x00, 0x78,
            ]);
        }
        data.extend([0xFF, EOI]);
        data
    }

    #[test]
    fn a_jpeg_that_reaches_its_end_marker_is_whole() {
        // Proves stuffed bytes, restart markers, fill bytes and several scans are walked past.
        assert!(reaches_end_marker(&whole_jpeg_structure()[..]).unwrap());
    }

    #[test]
    fn bytes_after_the_end_marker_do_not_matter() {
        // Proves trailing data some cameras append is not mistaken for anything.
        let mut data = whole_jpeg_structure();
        data.extend(b"trailing thumbnail or padding");
        assert!(reaches_end_marker(&data[..]).unwrap());
    }

    #[test]
    fn a_jpeg_cut_anywhere_before_its_end_marker_is_not_whole() {
        // Proves every truncation point, in a header, a length or scan data, is caught.
        let data = whole_jpeg_structure();
        for cut in 0..data.len() {
            assert!(!reaches_end_marker(&data[..cut]).unwrap(), "cut at {cut}");
        }
    }

    #[test]
    fn the_scan_works_across_small_buffer_boundaries() {
        // Proves a 0xFF at the end of one buffer and its marker at the start of the next are paired.
        let data = whole_jpeg_structure();
        let reader = io::BufReader::with_capacity(1, &data[..]);
        assert!(reaches_end_marker(reader).unwrap());
    }
}
