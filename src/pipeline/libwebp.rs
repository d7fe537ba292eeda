//! libwebp's C API, behind safe functions: the encoder settings a variant asks for, a still
//! image's lossy encode into libwebp's own buffer (handed on without a copy), and a still WebP's
//! decode (libwebp decodes about three times faster than the pure-Rust decoder in `image`).
//!
//! libwebp comes from `libwebp-sys` directly rather than through the `webp` crate: that crate pins
//! an old `libwebp-sys` (libwebp 1.3, SSE2 only), and two copies of libwebp cannot be linked into
//! one binary. `libwebp-sys` builds libwebp 1.6 with its SSE4.1 paths (the `sse41` feature) and
//! its worker thread (`WEBP_USE_THREAD`).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};

use libwebp_sys as sys;

/// libwebp's effort scale: 0 (fastest) to 6 (smallest files). `cwebp -m`, Sharp's `effort`.
pub const MAX_EFFORT: u8 = 6;

/// Why libwebp refused: its words, and whether trying again later could help (it ran out of
/// memory) or never will.
#[derive(Debug)]
pub(crate) struct EncodeError {
    pub reason: String,
    pub transient: bool,
}

impl EncodeError {
    fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            transient: false,
        }
    }
}

/// libwebp's settings for lossy output at `quality` (0 to 100) and `effort` (0 to 6), everything
/// else at libwebp's defaults (as `cwebp -q quality -m effort` and Sharp's `webp()` use).
pub(crate) fn config(quality: f32, effort: u8) -> Result<sys::WebPConfig, EncodeError> {
    let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::zeroed();
    // SAFETY: libwebp initialises every field of the zeroed struct it is handed, or says it could
    // not (a header/library version mismatch), in which case the value is never read.
    let mut config = unsafe {
        if sys::WebPConfigInitInternal(
            config.as_mut_ptr(),
            sys::WebPPreset::WEBP_PRESET_DEFAULT,
            quality,
            sys::WEBP_ENCODER_ABI_VERSION as i32,
        ) == 0
        {
            return Err(EncodeError::permanent(
                "libwebp's encoder is not the version it was built for",
            ));
        }
        config.assume_init()
    };
    config.method = i32::from(effort.min(MAX_EFFORT));
    // SAFETY: a fully initialised config.
    if unsafe { sys::WebPValidateConfig(&config) } == 0 {
        return Err(EncodeError::permanent(format!(
            "libwebp refuses quality {quality} with effort {effort}"
        )));
    }
    Ok(config)
}

/// Encodes `pixels` (rows of `width` x `height`, RGBA when `has_alpha`, else RGB, no padding) as
/// a lossy WebP with `config`. Raising `stop` aborts the encode within a row of macroblocks
/// (libwebp polls it through its progress hook); the error is then not transient.
pub(crate) fn encode_still(
    pixels: &[u8],
    has_alpha: bool,
    width: u32,
    height: u32,
    config: &sys::WebPConfig,
    stop: &AtomicBool,
) -> Result<WebpBytes, EncodeError> {
    let channels = if has_alpha { 4 } else { 3 };
    let (w, h) = match (i32::try_from(width), i32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(EncodeError::permanent(format!("bad size {width}x{height}"))),
    };
    let stride = w
        .checked_mul(channels)
        .ok_or_else(|| EncodeError::permanent("row too long"))?;
    if pixels.len() != width as usize * height as usize * channels as usize {
        return Err(EncodeError::permanent(
            "the pixel buffer does not match its size",
        ));
    }
    // SAFETY: the picture and writer are initialised by libwebp's own init functions before use;
    // the import reads exactly `h` rows of `stride` bytes from `pixels`, which holds that many
    // (checked above); the picture's writer points at `writer`, which outlives the encode; the
    // picture is freed exactly once, and the writer's buffer either moves into `WebpBytes` (which
    // frees it once) or is cleared here.
    unsafe {
        let mut picture = std::mem::MaybeUninit::<sys::WebPPicture>::zeroed();
        if sys::WebPPictureInitInternal(picture.as_mut_ptr(), sys::WEBP_ENCODER_ABI_VERSION as i32)
            == 0
        {
            return Err(EncodeError::permanent("cannot set up a picture"));
        }
        let mut picture = picture.assume_init();
        // Lossy output wants YUV: importing with `use_argb = 0` converts once, straight to it.
        picture.use_argb = 0;
        picture.width = w;
        picture.height = h;
        let imported = if has_alpha {
            sys::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), stride)
        } else {
            sys::WebPPictureImportRGB(&mut picture, pixels.as_ptr(), stride)
        };
        if imported == 0 {
            sys::WebPPictureFree(&mut picture);
            return Err(EncodeError {
                reason: "not enough memory for the picture".into(),
                transient: true,
            });
        }
        let mut writer = std::mem::MaybeUninit::<sys::WebPMemoryWriter>::zeroed();
        sys::WebPMemoryWriterInit(writer.as_mut_ptr());
        let mut writer = writer.assume_init();
        picture.writer = Some(sys::WebPMemoryWrite);
        picture.custom_ptr = (&mut writer as *mut sys::WebPMemoryWriter).cast();
        picture.progress_hook = Some(keep_going);
        picture.user_data = (stop as *const AtomicBool).cast_mut().cast();
        let encoded = sys::WebPEncode(config, &mut picture) != 0;
        let code = picture.error_code;
        sys::WebPPictureFree(&mut picture);
        if !encoded {
            sys::WebPMemoryWriterClear(&mut writer);
            let transient = matches!(
                code,
                sys::WebPEncodingError::VP8_ENC_ERROR_OUT_OF_MEMORY
                    | sys::WebPEncodingError::VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY
            );
            return Err(EncodeError {
                reason: format!("WebP encoder failed: {code:?}"),
                transient,
            });
        }
        Ok(WebpBytes {
            ptr: writer.mem,
            len: writer.size,
        })
    }
}

/// libwebp's progress hook: 0 (abort) once the run's stop flag is up.
unsafe extern "C" fn keep_going(_percent: i32, picture: *const sys::WebPPicture) -> i32 {
    // SAFETY: libwebp passes the picture being encoded, whose `user_data` `encode_still` set to
    // a flag that outlives the encode.
    let stopped = unsafe {
        let flag = (*picture).user_data as *const AtomicBool;
        !flag.is_null() && (*flag).load(Ordering::Relaxed)
    };
    i32::from(!stopped)
}

/// A still WebP decoded: rows of 8-bit RGBA when `has_alpha`, else RGB, no padding.
pub(crate) struct DecodedWebp {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
}

/// Why a WebP did not decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The data stops before the image does.
    Truncated,
    /// An animation: `decode_still` leaves those to the frame decoder.
    Animated,
    Corrupt(String),
}

/// Decodes a still WebP (lossy or lossless, with or without alpha) held in `data`, whose header
/// must say `expected` (width, height): the size the limits were checked against when another
/// parser read the header.
pub(crate) fn decode_still(data: &[u8], expected: (u32, u32)) -> Result<DecodedWebp, DecodeError> {
    let status = |code: sys::VP8StatusCode| match code {
        sys::VP8StatusCode::VP8_STATUS_NOT_ENOUGH_DATA => DecodeError::Truncated,
        other => DecodeError::Corrupt(format!("libwebp: {other:?}")),
    };
    let mut config = std::mem::MaybeUninit::<sys::WebPDecoderConfig>::zeroed();
    // SAFETY: libwebp initialises the zeroed config, or says it could not (never read then); it
    // reads `data` within its length; the output buffer it writes is `pixels`, whose size and
    // stride it is told and which outlives the call; `WebPFreeDecBuffer` frees nothing of ours
    // (external memory) but is called as the API asks.
    unsafe {
        if sys::WebPInitDecoderConfigInternal(
            config.as_mut_ptr(),
            sys::WEBP_DECODER_ABI_VERSION as i32,
        ) == 0
        {
            return Err(DecodeError::Corrupt(
                "libwebp's decoder is not the version it was built for".into(),
            ));
        }
        let mut config = config.assume_init();
        let found = sys::WebPGetFeaturesInternal(
            data.as_ptr(),
            data.len(),
            &mut config.input,
            sys::WEBP_DECODER_ABI_VERSION as i32,
        );
        if found != sys::VP8StatusCode::VP8_STATUS_OK {
            return Err(status(found));
        }
        if config.input.has_animation != 0 {
            return Err(DecodeError::Animated);
        }
        let (width, height) = (config.input.width, config.input.height);
        let has_alpha = config.input.has_alpha != 0;
        let channels: i32 = if has_alpha { 4 } else { 3 };
        let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
            return Err(DecodeError::Corrupt("negative size".into()));
        };
        if (w, h) != expected {
            return Err(DecodeError::Corrupt(format!(
                "libwebp reads the size as {w}x{h}, not {}x{}",
                expected.0, expected.1
            )));
        }
        let stride = width * channels;
        let mut pixels = vec![0u8; w as usize * h as usize * channels as usize];
        config.output.colorspace = if has_alpha {
            sys::WEBP_CSP_MODE::MODE_RGBA
        } else {
            sys::WEBP_CSP_MODE::MODE_RGB
        };
        config.output.is_external_memory = 1;
        config.output.u.RGBA = sys::WebPRGBABuffer {
            rgba: pixels.as_mut_ptr(),
            stride,
            size: pixels.len(),
        };
        let decoded = sys::WebPDecode(data.as_ptr(), data.len(), &mut config);
        sys::WebPFreeDecBuffer(&mut config.output);
        if decoded != sys::VP8StatusCode::VP8_STATUS_OK {
            return Err(status(decoded));
        }
        Ok(DecodedWebp {
            pixels,
            width: w,
            height: h,
            has_alpha,
        })
    }
}

/// A WebP file in libwebp's own buffer, freed by libwebp when dropped.
pub(crate) struct WebpBytes {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is owned outright (no one else holds the pointer) and never mutated.
unsafe impl Send for WebpBytes {}
// SAFETY: shared access is read-only.
unsafe impl Sync for WebpBytes {}

impl Deref for WebpBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: libwebp's writer wrote `len` bytes at `ptr`, which stays valid until drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::fmt::Debug for WebpBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebpBytes({} bytes)", self.len)
    }
}

impl Drop for WebpBytes {
    fn drop(&mut self) {
        // SAFETY: allocated by libwebp's memory writer, freed once, here; null is allowed.
        unsafe { sys::WebPFree(self.ptr.cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never raised.
    static GO: AtomicBool = AtomicBool::new(false);

    #[test]
    fn a_raised_stop_aborts_the_encode() {
        // Proves the progress hook reaches libwebp: with the flag up, the encode gives up.
        let pixels = vec![90u8; 256 * 256 * 3];
        let stop = AtomicBool::new(true);
        let err =
            encode_still(&pixels, false, 256, 256, &config(80.0, 4).unwrap(), &stop).unwrap_err();
        assert!(err.reason.contains("USER_ABORT"), "{}", err.reason);
        assert!(!err.transient);
    }

    #[test]
    fn an_encoded_still_is_a_webp_of_the_given_size() {
        // Proves the buffer hand-over: the bytes are a VP8 WebP that decodes to the input's size.
        let pixels = vec![120u8; 40 * 30 * 3];
        let config = config(80.0, 4).unwrap();
        let webp = encode_still(&pixels, false, 40, 30, &config, &GO).unwrap();
        assert!(webp.starts_with(b"RIFF") && &webp[8..12] == b"WEBP");
        let decoded = image::load_from_memory(&webp).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (40, 30));
    }

    #[test]
    fn a_still_webp_decodes_to_its_pixels_and_a_cut_one_says_so() {
        // Proves the decoder: the size and channels come back, a cut file is truncated, other
        // bytes are corrupt, and an animation is left to the frame decoder.
        let mut pixels = Vec::new();
        for i in 0..(20 * 10) {
            pixels.extend([200, (i % 256) as u8, 30, 128]);
        }
        let webp = encode_still(&pixels, true, 20, 10, &config(90.0, 4).unwrap(), &GO).unwrap();
        let decoded = decode_still(&webp, (20, 10)).unwrap();
        assert_eq!(
            (decoded.width, decoded.height, decoded.has_alpha),
            (20, 10, true)
        );
        assert_eq!(decoded.pixels.len(), 20 * 10 * 4);
        assert!(
            (i32::from(decoded.pixels[3]) - 128).abs() <= 2,
            "alpha kept"
        );
        assert_eq!(
            decode_still(&webp[..webp.len() - 10], (20, 10)).err(),
            Some(DecodeError::Truncated)
        );
        assert!(decode_still(b"RIFF\0\0\0\0WEBPVP8 junk", (20, 10)).is_err());
        // A size other than the one the limits were checked against: refused, not decoded.
        assert!(matches!(
            decode_still(&webp, (20, 11)),
            Err(DecodeError::Corrupt(reason)) if reason.contains("20x10, not 20x11")
        ));
        let green = [0u8, 255, 0, 255].repeat(16);
        let blue = [0u8, 0, 255, 255].repeat(16);
        let frames = [(green, 100), (blue, 100)];
        let animated =
            crate::pipeline::animation::encode(&frames, 4, 4, &config(80.0, 4).unwrap()).unwrap();
        assert_eq!(
            decode_still(&animated, (4, 4)).err(),
            Some(DecodeError::Animated)
        );
    }

    #[test]
    fn a_buffer_that_does_not_match_its_size_is_refused_not_read() {
        // Proves the length check stands between a wrong size and libwebp reading past the end.
        let config = config(80.0, 4).unwrap();
        let err = encode_still(&[0; 10], true, 40, 30, &config, &GO).unwrap_err();
        assert!(!err.transient && err.reason.contains("does not match"));
        assert!(encode_still(&[0; 3], false, 0, 1, &config, &GO).is_err());
    }

    #[test]
    fn effort_trades_time_for_bytes_and_is_capped_at_six() {
        // Proves the effort reaches libwebp: the fastest method writes a different file.
        let mut pixels = Vec::new();
        for y in 0..64u32 {
            for x in 0..64u32 {
                pixels.extend([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]);
            }
        }
        let fast = encode_still(&pixels, false, 64, 64, &config(80.0, 0).unwrap(), &GO).unwrap();
        let slow = encode_still(&pixels, false, 64, 64, &config(80.0, 6).unwrap(), &GO).unwrap();
        assert_ne!(&*fast, &*slow);
        assert_eq!(config(80.0, 9).unwrap().method, 6);
    }
}
