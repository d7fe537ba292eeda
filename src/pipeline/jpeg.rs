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
//! (Lanczos) still does the shaping, as libvips does. libjpeg-turbo decodes only 8-bit YCbCr, RGB
//! and greyscale to RGB; CMYK, YCCK, lossless and 12-bit files go to `image`'s decoder, at full
//! size, which the frame header (read by the same walk) tells before the memory is estimated.

use std::io::{self, BufRead, Read};

use turbojpeg_sys as tj;

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
const MAX_SCANS: i32 = 500;

/// What [`decode_rgb`] made: rows of 8-bit RGB, no padding.
pub(crate) struct Decoded {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// A TurboJPEG decompressor, destroyed when dropped.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by tj3Init, destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    /// Whether the last call failed for good; a warning (extraneous bytes, an unknown JFIF
    /// revision: libjpeg-turbo decoded the image anyway) is no failure, as for other decoders.
    #[allow(clippy::unnecessary_cast)]
    fn failed(&self, returned: i32) -> Option<String> {
        // SAFETY: a live handle; the error string is libjpeg-turbo's, copied at once.
        unsafe {
            if returned == 0 || tj::tj3GetErrorCode(self.0) == tj::TJERR_TJERR_WARNING as i32 {
                return None;
            }
            let message = std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(self.0));
            Some(message.to_string_lossy().into_owned())
        }
    }
}

/// Decodes `jpeg` (a kind [`Frame::turbo_decodes`]) to RGB at 1/`shrink` of its size with
/// libjpeg-turbo. Its header must say `expected` (width, height): the size the limits and the
/// memory grant were checked against when another parser read the header; a file two parsers read
/// differently is refused, never decoded at a size nobody checked.
// bindgen gives the C enums' constants whichever integer type the platform's C compiler picks;
// the casts make each the `int` the functions take, wherever they are already.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn decode_rgb(
    jpeg: &[u8],
    expected: (u32, u32),
    shrink: u32,
) -> Result<Decoded, String> {
    // SAFETY: every call gets the live handle; libjpeg-turbo reads `jpeg` within its length and
    // writes `height` rows of `pitch` bytes into `pixels`, which was sized for exactly that from
    // the scaled size libjpeg-turbo itself computes (TJSCALED, below).
    unsafe {
        let handle = Handle(tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32));
        if handle.0.is_null() {
            return Err("cannot start libjpeg-turbo".into());
        }
        let returned = tj::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as _);
        if let Some(e) = handle.failed(returned) {
            return Err(e);
        }
        let colorspace = tj::tj3Get(handle.0, tj::TJPARAM_TJPARAM_COLORSPACE as i32);
        if colorspace == tj::TJCS_TJCS_CMYK as i32 || colorspace == tj::TJCS_TJCS_YCCK as i32 {
            return Err("a CMYK JPEG goes to the other decoder".into());
        }
        let factor = tj::tjscalingfactor {
            num: 1,
            denom: shrink as i32,
        };
        if let Some(e) = handle.failed(tj::tj3SetScalingFactor(handle.0, factor)) {
            return Err(e);
        }
        tj::tj3Set(handle.0, tj::TJPARAM_TJPARAM_SCANLIMIT as i32, MAX_SCANS);
        let full = |param| tj::tj3Get(handle.0, param as i32);
        let (full_w, full_h) = (
            full(tj::TJPARAM_TJPARAM_JPEGWIDTH),
            full(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
        );
        if (full_w as i64, full_h as i64) != (i64::from(expected.0), i64::from(expected.1)) {
            return Err(format!(
                "libjpeg-turbo reads the size as {full_w}x{full_h}, not {}x{}",
                expected.0, expected.1
            ));
        }
        // TJSCALED: ceil(side * num / denom).
        let (w, h) = shrunk(full_w as u32, full_h as u32, shrink);
        let pitch = w as usize * 3;
        let mut pixels = vec![0u8; pitch * h as usize];
        let returned = tj::tj3Decompress8(
            handle.0,
            jpeg.as_ptr(),
            jpeg.len() as _,
            pixels.as_mut_ptr(),
            pitch as i32,
            tj::TJPF_TJPF_RGB as i32,
        );
        if let Some(e) = handle.failed(returned) {
            return Err(e);
        }
        Ok(Decoded {
            pixels,
            width: w,
            height: h,
        })
    }
}

const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;

/// What the marker walk learns of a JPEG before anything decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Structure {
    /// The data reaches an EOI marker after the segments and scans before it.
    pub whole: bool,
    /// The first frame header (SOF), if one was read.
    pub frame: Option<Frame>,
}

/// A JPEG's frame header (SOF): what kind of JPEG it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Bits a sample: 8 for nearly every photo, 12 or 16 for medical and scientific ones.
    pub precision: u8,
    /// 1 (greyscale), 3 (YCbCr or RGB) or 4 (CMYK or YCCK).
    pub components: u8,
    /// Progressive: the decoder then holds every coefficient of the image at full size,
    /// whatever scale it outputs.
    pub progressive: bool,
    pub lossless: bool,
}

impl Frame {
    /// Whether libjpeg-turbo decodes it to 8-bit RGB, at any scale.
    pub fn turbo_decodes(&self) -> bool {
        self.precision == 8 && matches!(self.components, 1 | 3) && !self.lossless
    }
}

/// Walks the stream from its start through its segments and scans: whether it reaches an EOI
/// marker (trailing bytes after it are fine: cameras append things), and its frame header.
/// Malformed structure counts as whole: telling a broken file from a cut one is the decoder's
/// job.
pub(crate) fn structure(mut r: impl BufRead) -> io::Result<Structure> {
    let mut found = Structure::default();
    let mut pending = None;
    loop {
        let marker = match pending.take() {
            Some(marker) => marker,
            None => match next_marker(&mut r)? {
                Some(marker) => marker,
                None => return Ok(found),
            },
        };
        match marker {
            EOI => {
                found.whole = true;
                return Ok(found);
            }
            // Markers that stand alone, without a length: SOI, TEM, RST0-7 (and a stray 0x00).
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => {}
            _ => {
                let mut len = [0; 2];
                if !read_all(&mut r, &mut len)? {
                    return Ok(found);
                }
                let Some(mut body) = u16::from_be_bytes(len).checked_sub(2) else {
                    found.whole = true;
                    return Ok(found);
                };
                if is_frame_header(marker) && found.frame.is_none() && body >= 6 {
                    let mut head = [0; 6];
                    if !read_all(&mut r, &mut head)? {
                        return Ok(found);
                    }
                    body -= 6;
                    found.frame = Some(Frame {
                        precision: head[0],
                        components: head[5],
                        progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                        lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
                    });
                }
                if io::copy(&mut r.by_ref().take(u64::from(body)), &mut io::sink())?
                    < u64::from(body)
                {
                    return Ok(found);
                }
                if marker == SOS {
                    match skip_entropy_coded_data(&mut r)? {
                        Some(marker) => pending = Some(marker),
                        None => return Ok(found),
                    }
                }
            }
        }
    }
}

/// SOF0 to SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
fn is_frame_header(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
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
        // Proves the scaled decode's size matches `shrunk` (odd sides round up), that a CMYK
        // file is refused rather than decoded wrongly (and the frame header says so first), and
        // that a warning is no failure.
        let rgb = image::RgbImage::from_fn(101, 67, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&rgb)
            .unwrap();
        for shrink in [1, 2, 4, 8] {
            let decoded = decode_rgb(&jpeg, (101, 67), shrink).unwrap();
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
        assert!(decode_rgb(&cmyk, (8, 8), 1).is_err());
        let frame = structure(&cmyk[..]).unwrap().frame.unwrap();
        assert_eq!((frame.components, frame.turbo_decodes()), (4, false));
        assert!(decode_rgb(b"not a jpeg", (101, 67), 1).is_err());
        // A size other than the one the limits were checked against: refused, not decoded.
        let err = decode_rgb(&jpeg, (100, 67), 1).err().unwrap();
        assert!(err.contains("101x67, not 100x67"), "{err}");
        // Bytes between segments only make libjpeg-turbo warn: the image still decodes.
        let mut noisy = jpeg[..2].to_vec();
        noisy.extend_from_slice(b"junk");
        noisy.extend_from_slice(&jpeg[2..]);
        assert_eq!(decode_rgb(&noisy, (101, 67), 1).unwrap().width, 101);
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
        assert!(structure(&whole_jpeg_structure()[..]).unwrap().whole);
    }

    #[test]
    fn bytes_after_the_end_marker_do_not_matter() {
        // Proves trailing data some cameras append is not mistaken for anything.
        let mut data = whole_jpeg_structure();
        data.extend(b"trailing thumbnail or padding");
        assert!(structure(&data[..]).unwrap().whole);
    }

    #[test]
    fn a_jpeg_cut_anywhere_before_its_end_marker_is_not_whole() {
        // Proves every truncation point, in a header, a length or scan data, is caught.
        let data = whole_jpeg_structure();
        for cut in 0..data.len() {
            assert!(!structure(&data[..cut]).unwrap().whole, "cut at {cut}");
        }
    }

    #[test]
    fn the_scan_works_across_small_buffer_boundaries() {
        // Proves a 0xFF at the end of one buffer and its marker at the start of the next are paired.
        let data = whole_jpeg_structure();
        let reader = io::BufReader::with_capacity(1, &data[..]);
        assert!(structure(reader).unwrap().whole);
    }
}
