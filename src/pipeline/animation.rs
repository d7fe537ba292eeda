//! Animated GIF and WebP: counted from the file's structure before anything is decoded, decoded
//! frame by frame (each composited onto the full canvas, as shown), and encoded as animated WebP
//! with every frame's duration kept.
//!
//! The count walks the container's blocks (GIF) or chunks (WebP) without decompressing anything, so
//! `pipeline.max_frames` and `pipeline.max_animation_pixels` (frames times canvas) are checked
//! before any frame is allocated. The encoder is libwebp's `WebPAnimEncoder`, called directly: the
//! `webp` crate's wrapper ends every animation at timestamp 0, which gives the last frame the
//! average duration instead of its own.

use std::io::{BufRead, Read, Seek, SeekFrom};

use image::AnimationDecoder;
use libwebp_sys as sys;

use super::format::ImageFormat;

/// One frame as shown: RGBA over the whole canvas, and how long it stays.
#[derive(Clone)]
pub(crate) struct Frame {
    pub pixels: Vec<u8>,
    pub duration_ms: u32,
}

/// Frames an animation may have at most before its count is given up (the limit check refuses
/// far fewer); also what a file full of empty blocks costs to walk.
const COUNT_CAP: u32 = 1_000_000;

/// What the walk of an animation's container found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameCount {
    /// 1 for a still image, or a format without animation.
    pub frames: u32,
    /// The pixels decoding every frame takes: each frame's own rectangle or the canvas, whichever
    /// is larger (a GIF frame may claim more than its canvas); 0 when not counted.
    pub pixels: u64,
}

impl FrameCount {
    fn still() -> Self {
        Self {
            frames: 1,
            pixels: 0,
        }
    }
}

/// How many frames the file holds, and what they take. A walk cut short (a file without its
/// trailer) counts the frames it passed whole.
pub(crate) fn count_frames(format: ImageFormat, reader: &mut (impl Read + Seek)) -> FrameCount {
    let mut count = FrameCount {
        frames: 0,
        pixels: 0,
    };
    match format {
        ImageFormat::Gif => {
            let _ = gif_frames(reader, &mut count);
        }
        ImageFormat::WebP => {
            let _ = webp_frames(reader, &mut count);
        }
        _ => {}
    }
    let _ = reader.rewind();
    if count.frames <= 1 {
        FrameCount::still()
    } else {
        count
    }
}

/// Walks a GIF's blocks, counting image descriptors and the pixels of each frame.
fn gif_frames(reader: &mut (impl Read + Seek), count: &mut FrameCount) -> std::io::Result<()> {
    let mut header = [0u8; 13];
    reader.read_exact(&mut header)?;
    let width = u16::from_le_bytes([header[6], header[7]]);
    let height = u16::from_le_bytes([header[8], header[9]]);
    let canvas = u64::from(width) * u64::from(height);
    let packed = header[10];
    if packed & 0x80 != 0 {
        skip(reader, 3 * (2u64 << (packed & 7)))?;
    }
    loop {
        match byte(reader)? {
            // Image descriptor: position and size (8 bytes), then a local colour table, the LZW
            // minimum code size and the data sub-blocks.
            0x2C => {
                let mut descriptor = [0u8; 9];
                reader.read_exact(&mut descriptor)?;
                let frame_width = u16::from_le_bytes([descriptor[4], descriptor[5]]);
                let frame_height = u16::from_le_bytes([descriptor[6], descriptor[7]]);
                if descriptor[8] & 0x80 != 0 {
                    skip(reader, 3 * (2u64 << (descriptor[8] & 7)))?;
                }
                byte(reader)?;
                skip_sub_blocks(reader)?;
                let area = u64::from(frame_width) * u64::from(frame_height);
                count.frames += 1;
                count.pixels = count.pixels.saturating_add(area.max(canvas));
                if count.frames >= COUNT_CAP {
                    return Ok(());
                }
            }
            // Extension: its label, then sub-blocks.
            0x21 => {
                byte(reader)?;
                skip_sub_blocks(reader)?;
            }
            // Trailer, or anything else: the end of what can be read.
            _ => return Ok(()),
        }
    }
}

fn skip_sub_blocks(reader: &mut (impl Read + Seek)) -> std::io::Result<()> {
    loop {
        match byte(reader)? {
            0 => return Ok(()),
            len => skip(reader, u64::from(len))?,
        }
    }
}

/// Walks a WebP's RIFF chunks, counting animation frames (`ANMF`), but only in a file whose VP8X
/// header says it is animated: a still image may carry stray ANMF chunks, which decoders skip.
fn webp_frames(reader: &mut (impl Read + Seek), count: &mut FrameCount) -> std::io::Result<()> {
    reader.seek(SeekFrom::Start(12))?;
    let mut head = [0u8; 8];
    reader.read_exact(&mut head)?;
    const ANIMATION_FLAG: u8 = 0x02;
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    // VP8X: flags, 3 reserved bytes, then the canvas's width and height less one, 24 bits each.
    let mut vp8x = [0u8; 10];
    if &head[..4] != b"VP8X" || len < 10 {
        return Ok(());
    }
    reader.read_exact(&mut vp8x)?;
    if vp8x[0] & ANIMATION_FLAG == 0 {
        return Ok(());
    }
    let side = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], 0])) + 1;
    let canvas = side(&vp8x[4..7]) * side(&vp8x[7..10]);
    skip(reader, u64::from(len) + u64::from(len % 2) - 10)?;
    while reader.read_exact(&mut head).is_ok() {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if &head[..4] == b"ANMF" {
            // A frame lies within the canvas (decoders refuse one that does not).
            count.frames += 1;
            count.pixels = count.pixels.saturating_add(canvas);
            if count.frames >= COUNT_CAP {
                break;
            }
        }
        // Chunks are padded to an even length.
        skip(reader, u64::from(len) + u64::from(len % 2))?;
    }
    Ok(())
}

fn byte(reader: &mut impl Read) -> std::io::Result<u8> {
    let mut one = [0u8; 1];
    reader.read_exact(&mut one)?;
    Ok(one[0])
}

/// Skips forward; `seek_relative` keeps a `BufReader`'s buffer, where `seek` would throw it away
/// (and read again) at every one of a GIF's many small blocks.
fn skip(reader: &mut impl Seek, bytes: u64) -> std::io::Result<()> {
    let bytes = i64::try_from(bytes).map_err(|_| std::io::ErrorKind::InvalidData)?;
    reader.seek_relative(bytes)
}

/// The first `at_most` frames of an animated GIF or WebP (what the count found, so a file the
/// decoder reads further than the count did still costs no more than was checked), each
/// composited onto its canvas.
pub(crate) fn decode_frames<R: BufRead + Seek>(
    format: ImageFormat,
    reader: R,
    at_most: usize,
) -> image::ImageResult<Vec<Frame>> {
    let frames = match format {
        ImageFormat::Gif => image::codecs::gif::GifDecoder::new(reader)?.into_frames(),
        ImageFormat::WebP => image::codecs::webp::WebPDecoder::new(reader)?.into_frames(),
        _ => return Ok(Vec::new()),
    };
    frames
        .take(at_most)
        .map(|frame| {
            let frame = frame?;
            let (numer, denom) = frame.delay().numer_denom_ms();
            Ok(Frame {
                duration_ms: numer / denom.max(1),
                pixels: frame.into_buffer().into_raw(),
            })
        })
        .collect()
}

/// This short or shorter and browsers show a frame for 100 ms instead; so does pixdrop, so the
/// animation plays at the speed it always did.
const MIN_FRAME_MS: u32 = 10;
const DEFAULT_FRAME_MS: u32 = 100;

/// Encodes frames (RGBA, `width` x `height` each, with their durations) as an animated lossy WebP
/// with `config`, looping forever (as nearly every animated GIF asks).
pub(crate) fn encode(
    frames: &[(Vec<u8>, u32)],
    width: u32,
    height: u32,
    config: &sys::WebPConfig,
) -> Result<Vec<u8>, String> {
    let (w, h) = (
        i32::try_from(width).map_err(|_| "width out of range")?,
        i32::try_from(height).map_err(|_| "height out of range")?,
    );
    let expected = width as usize * height as usize * 4;
    if frames.iter().any(|(pixels, _)| pixels.len() != expected) {
        return Err("a frame's buffer does not match its size".into());
    }
    // SAFETY: every pointer handed to libwebp below points to a live, initialised value of the
    // type it expects: the options and picture are initialised by libwebp's own init functions,
    // each picture imports a buffer of exactly width x height x 4 bytes (checked above), and the
    // encoder is deleted (and each picture freed) exactly once, on every path.
    unsafe {
        // Zeroed: libwebp's init leaves the struct's padding unwritten.
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::zeroed();
        if sys::WebPAnimEncoderOptionsInitInternal(
            options.as_mut_ptr(),
            sys::WEBP_MUX_ABI_VERSION as i32,
        ) == 0
        {
            return Err("libwebp's animation encoder is not the version it was built for".into());
        }
        let mut options = options.assume_init();
        options.anim_params.loop_count = 0;
        let encoder =
            sys::WebPAnimEncoderNewInternal(w, h, &options, sys::WEBP_MUX_ABI_VERSION as i32);
        if encoder.is_null() {
            return Err("cannot create the animation encoder".into());
        }
        let encoder = Encoder(encoder);
        let mut timestamp: i32 = 0;
        for (pixels, duration) in frames {
            let mut picture = std::mem::MaybeUninit::<sys::WebPPicture>::zeroed();
            if !sys::WebPPictureInit(picture.as_mut_ptr()) {
                return Err("cannot set up a picture".into());
            }
            let mut picture = picture.assume_init();
            picture.use_argb = 1;
            picture.width = w;
            picture.height = h;
            let imported = sys::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), w * 4);
            let added = imported != 0
                && sys::WebPAnimEncoderAdd(encoder.0, &mut picture, timestamp, config) != 0;
            sys::WebPPictureFree(&mut picture);
            if !added {
                return Err(encoder.error());
            }
            let shown = if *duration <= MIN_FRAME_MS {
                DEFAULT_FRAME_MS
            } else {
                *duration
            };
            // libwebp takes the timestamps' differences, wrapping included.
            timestamp = timestamp.wrapping_add(i32::try_from(shown).unwrap_or(i32::MAX));
        }
        // The end of the last frame: without it libwebp gives that frame the average duration.
        if sys::WebPAnimEncoderAdd(encoder.0, std::ptr::null_mut(), timestamp, std::ptr::null())
            == 0
        {
            return Err(encoder.error());
        }
        let mut data = std::mem::MaybeUninit::<sys::WebPData>::zeroed().assume_init();
        let assembled = sys::WebPAnimEncoderAssemble(encoder.0, &mut data) != 0;
        let bytes = if assembled && !data.bytes.is_null() {
            Ok(std::slice::from_raw_parts(data.bytes, data.size).to_vec())
        } else {
            Err(encoder.error())
        };
        // Also after a failure, which may leave a buffer behind.
        sys::WebPDataClear(&mut data);
        bytes
    }
}

/// Owns a libwebp animation encoder: deleted when dropped.
struct Encoder(*mut sys::WebPAnimEncoder);

impl Encoder {
    fn error(&self) -> String {
        // SAFETY: the encoder is live; libwebp returns a NUL-terminated string it owns, or null.
        let message = unsafe { sys::WebPAnimEncoderGetError(self.0) };
        if message.is_null() {
            return "the animation encoder failed".into();
        }
        // SAFETY: non-null, NUL-terminated, valid until the encoder is deleted (after this copy).
        let text = unsafe { std::ffi::CStr::from_ptr(message) };
        format!("the animation encoder failed: {}", text.to_string_lossy())
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimEncoderNewInternal, deleted only here.
        unsafe { sys::WebPAnimEncoderDelete(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn quality_80() -> sys::WebPConfig {
        crate::pipeline::libwebp::config(80.0, 4).unwrap()
    }

    /// An animated GIF of `frames` 8x6 frames, each shown for `delay_ms`.
    pub(crate) fn gif(frames: u8, delay_ms: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
            for i in 0..frames {
                let buffer =
                    image::RgbaImage::from_pixel(8, 6, image::Rgba([i * 40, 100, 200, 255]));
                let delay = image::Delay::from_numer_denom_ms(delay_ms, 1);
                encoder
                    .encode_frame(image::Frame::from_parts(buffer, 0, 0, delay))
                    .unwrap();
            }
        }
        out
    }

    fn frames_of(format: ImageFormat, bytes: &[u8]) -> u32 {
        count_frames(format, &mut Cursor::new(bytes)).frames
    }

    #[test]
    fn frames_are_counted_from_the_structure_alone() {
        assert_eq!(frames_of(ImageFormat::Gif, &gif(5, 70)), 5);
        assert_eq!(frames_of(ImageFormat::Gif, &gif(1, 70)), 1);
        let pixels = vec![(vec![9u8; 8 * 6 * 4], 50), (vec![200u8; 8 * 6 * 4], 80)];
        let webp = encode(&pixels, 8, 6, &quality_80()).unwrap();
        let count = count_frames(ImageFormat::WebP, &mut Cursor::new(&webp));
        assert_eq!((count.frames, count.pixels), (2, 2 * 8 * 6));
        // Without its trailer a GIF still counts its whole frames; cut anywhere, never more.
        let whole = gif(3, 70);
        assert_eq!(frames_of(ImageFormat::Gif, &whole[..whole.len() - 1]), 3);
        for cut in 0..whole.len() {
            assert!(frames_of(ImageFormat::Gif, &whole[..cut]) <= 3);
        }
        // A still WebP's VP8X says so: ANMF chunks in it are not frames.
        let mut still = webp.clone();
        still[20] &= !0x02;
        assert_eq!(frames_of(ImageFormat::WebP, &still), 1);
    }

    #[test]
    fn gif_frames_larger_than_their_canvas_are_counted_at_their_own_size() {
        // A 2x2 canvas whose frames claim 300x200: what decoding them really costs.
        let mut gif = b"GIF89a".to_vec();
        gif.extend([2, 0, 2, 0, 0, 0, 0]);
        for _ in 0..2 {
            gif.push(0x2C);
            gif.extend([0, 0, 0, 0]);
            gif.extend(300u16.to_le_bytes());
            gif.extend(200u16.to_le_bytes());
            gif.extend([0, 2, 1, 0x44, 0]);
        }
        gif.push(0x3B);
        let count = count_frames(ImageFormat::Gif, &mut Cursor::new(gif));
        assert_eq!((count.frames, count.pixels), (2, 2 * 300 * 200));
    }

    #[test]
    fn frames_of_ten_ms_or_less_are_shown_for_a_tenth_of_a_second_as_browsers_do() {
        let pixels = vec![(vec![9u8; 8 * 6 * 4], 10), (vec![200u8; 8 * 6 * 4], 15)];
        let webp = encode(&pixels, 8, 6, &quality_80()).unwrap();
        let back = decode_frames(ImageFormat::WebP, Cursor::new(webp), 2).unwrap();
        let durations: Vec<u32> = back.iter().map(|f| f.duration_ms).collect();
        assert_eq!(durations, [100, 15]);
    }

    #[test]
    fn every_frame_keeps_its_duration_through_decode_and_encode() {
        let frames = decode_frames(ImageFormat::Gif, Cursor::new(gif(3, 70)), 3).unwrap();
        assert_eq!(frames.len(), 3);
        let capped = decode_frames(ImageFormat::Gif, Cursor::new(gif(3, 70)), 2).unwrap();
        assert_eq!(capped.len(), 2, "never more than were counted");
        assert!(
            frames
                .iter()
                .all(|f| f.duration_ms == 70 && f.pixels.len() == 8 * 6 * 4)
        );
        let durations = [40, 120, 250];
        let pixels: Vec<(Vec<u8>, u32)> = durations
            .iter()
            .enumerate()
            .map(|(i, d)| (vec![(i * 90) as u8; 8 * 6 * 4], *d))
            .collect();
        let webp = encode(&pixels, 8, 6, &quality_80()).unwrap();
        let back = decode_frames(ImageFormat::WebP, Cursor::new(webp), 3).unwrap();
        let got: Vec<u32> = back.iter().map(|f| f.duration_ms).collect();
        assert_eq!(got, durations);
        assert!(
            encode(&[(vec![0; 3], 10)], 8, 6, &quality_80()).is_err(),
            "a short buffer is refused"
        );
    }
}
