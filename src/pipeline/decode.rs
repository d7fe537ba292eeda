//! From a file on disk to one upright 8-bit sRGB or sRGBA image in memory, refusing anything that
//! is not an accepted image, too large, damaged or cut short, and deciding that before the pixel
//! memory is allocated wherever the header allows. What the file says beyond its pixels (its colour
//! profile, whether it has a location) is read here too, once.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, ImageReader};

use super::animation::{self, Frame};
use super::colour::{self, Colour};
use super::control::Control;
use super::error::{PipelineError, SizeLimit};
use super::exif;
use super::format::{ImageFormat, SNIFF_LEN, Sniffed, sniff};
use super::geometry::plan;
use super::jpeg;
use super::libwebp;
use super::limits::Limits;
use super::png;
use super::spec::VariantSpec;

/// A decoded, oriented image, ready to be made into any number of variants.
#[derive(Clone)]
pub struct DecodedImage {
    pub(crate) format: ImageFormat,
    /// The image's size as displayed (after the EXIF orientation): the original's, whatever
    /// size its pixels were decoded at.
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// The size of `pixels`: `width` x `height`, or smaller when a JPEG was decoded at a reduced
    /// scale because every variant is much smaller (`jpeg::shrink_for`).
    pub(crate) pixel_width: u32,
    pub(crate) pixel_height: u32,
    /// Whether `pixels` is RGBA (4 bytes a pixel) rather than RGB (3).
    pub(crate) has_alpha: bool,
    /// Rows top to bottom, no padding, in sRGB.
    pub(crate) pixels: Vec<u8>,
    pub(crate) colour: Colour,
    /// Whether the file's EXIF says where it was taken.
    pub(crate) has_location: bool,
    /// What was noticed and worked around (a profile that could not be used), in words.
    pub(crate) warnings: Vec<String>,
    /// An animation's frames, each over the whole canvas (RGBA, sRGB); `pixels` is then the first.
    pub(crate) animation: Option<Vec<Frame>>,
}

impl DecodedImage {
    /// The format the file was in.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// Width as displayed, after the EXIF orientation.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height as displayed, after the EXIF orientation.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// True when the source format carries an alpha channel; variants then keep it.
    pub fn has_alpha(&self) -> bool {
        self.has_alpha
    }

    /// The pixels, rows top to bottom without padding: RGBA when [`Self::has_alpha`], else RGB,
    /// 8 bits a channel, sRGB, [`Self::pixel_size`] of them. For callers that want more from one
    /// decode (a placeholder colour).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Width and height of [`Self::pixels`]: the displayed size, or smaller when the variants
    /// asked for were small enough for a JPEG to be decoded at a reduced scale.
    pub fn pixel_size(&self) -> (u32, u32) {
        (self.pixel_width, self.pixel_height)
    }

    /// The file's colour profile, and whether the pixels were converted from it.
    pub fn colour(&self) -> &Colour {
        &self.colour
    }

    /// Whether the file's EXIF holds a GPS position.
    pub fn has_location(&self) -> bool {
        self.has_location
    }

    /// What was worked around while decoding, in words.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many frames it has: more than one for an animation kept whole.
    pub fn frames(&self) -> usize {
        self.animation.as_ref().map_or(1, Vec::len)
    }
}

impl std::fmt::Debug for DecodedImage {
    // Not derived: printing megabytes of pixels helps nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedImage")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pixel_size", &self.pixel_size())
            .field("has_alpha", &self.has_alpha)
            .finish_non_exhaustive()
    }
}

/// What the header says about an image, read without decoding its pixels: enough to decide
/// whether, and when, to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: ImageFormat,
    /// As displayed, after the EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// The most memory decoding and rendering it will hold at once, estimated from the header:
    /// the decoder's buffer at the file's own depth (16-bit counted), the 8-bit copy and the
    /// rotated copy when those are needed, the file itself, and the largest variant's buffers.
    pub memory_bytes: u64,
    /// Frames kept: more than one for an animation within the limits.
    pub frames: u32,
}

/// Reads the header of the image in `source` and checks it against `limits`; no pixel is decoded.
pub fn probe(
    source: impl Read + Seek,
    limits: &Limits,
    specs: &[VariantSpec],
) -> Result<Probe, PipelineError> {
    Ok(open(&mut BufReader::new(source), limits, specs)?.probe)
}

/// Decodes the image read from `source` (a file, or bytes in memory): sniffs the format, checks
/// the header against `limits`, decodes the first frame, applies the EXIF orientation and converts
/// to 8 bits a channel. No memory bound: see [`decode_within`].
pub fn decode(source: impl Read + Seek, limits: &Limits) -> Result<DecodedImage, PipelineError> {
    decode_within(source, limits, &[], &Control::unlimited())
}

/// [`decode`], refusing before any pixel is allocated when the image needs more memory than
/// `control` grants (with variants of `specs` to render), and not starting once stopped.
pub fn decode_within(
    source: impl Read + Seek,
    limits: &Limits,
    specs: &[VariantSpec],
    control: &Control,
) -> Result<DecodedImage, PipelineError> {
    control.stop.check()?;
    let mut reader = BufReader::new(source);
    let Opened {
        probe,
        decoder,
        orientation,
        icc,
        png_colour,
        grey,
        has_location,
        first_frame_only,
        shrink,
        turbo,
        stored,
    } = open(&mut reader, limits, specs)?;
    if probe.memory_bytes > control.memory_bytes {
        return Err(PipelineError::TooLarge {
            width: probe.width,
            height: probe.height,
            limit: SizeLimit::Memory,
        });
    }
    let format = probe.format;
    let from_decoder = |e| PipelineError::from_decoder(format, e);
    let colour_plan = |has_alpha| match (&icc, png_colour) {
        (Some(icc), _) => colour::Plan::for_profile(Some(icc), grey, has_alpha),
        (None, Some(png)) => colour::Plan::for_png(png, grey, has_alpha),
        (None, None) => colour::Plan::none(),
    };
    if probe.frames > 1 {
        let mut plan = colour_plan(true);
        drop(decoder);
        reader.rewind().map_err(PipelineError::read)?;
        let counted = probe.frames as usize;
        let mut frames =
            animation::decode_frames(format, &mut reader, counted).map_err(from_decoder)?;
        if frames.is_empty() {
            return Err(PipelineError::Corrupt {
                format,
                detail: "the animation has no frame that decodes".into(),
            });
        }
        for frame in &mut frames {
            plan.apply(&mut frame.pixels, probe.width, true);
        }
        let first = frames.first().map(|f| f.pixels.clone()).unwrap_or_default();
        return Ok(DecodedImage {
            format,
            width: probe.width,
            height: probe.height,
            pixel_width: probe.width,
            pixel_height: probe.height,
            has_alpha: true,
            pixels: first,
            colour: plan.colour,
            has_location,
            warnings: plan.warning.into_iter().collect(),
            animation: Some(frames),
        });
    }
    // JPEG through libjpeg-turbo, scaled when the variants allow, and still WebP through libwebp:
    // both need the file in memory (as `image`'s decoders do, reading it into their own buffer).
    let image = if format == ImageFormat::Jpeg {
        drop(decoder);
        reader.rewind().map_err(PipelineError::read)?;
        let mut jpeg = Vec::new();
        reader.read_to_end(&mut jpeg).map_err(PipelineError::read)?;
        decode_jpeg(&jpeg, stored, shrink, turbo)?
    } else if format == ImageFormat::WebP {
        drop(decoder);
        reader.rewind().map_err(PipelineError::read)?;
        let mut webp = Vec::new();
        reader.read_to_end(&mut webp).map_err(PipelineError::read)?;
        decode_webp(&webp, stored)?
    } else {
        // For GIF and WebP this is the first frame of an animation.
        DynamicImage::from_decoder(decoder).map_err(from_decoder)?
    };
    let has_alpha = image.color().has_alpha();
    // 16-bit, float, grey and palette images all end up as 8-bit RGB(A): WebP holds nothing else,
    // and one pixel layout keeps resizing simple. `into_*` reuses the buffer when it already is.
    let mut image = if has_alpha {
        DynamicImage::ImageRgba8(image.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.into_rgb8())
    };
    // Before resizing, which mixes neighbouring pixels: that must happen in the colours they are
    // shown in.
    let mut plan = colour_plan(has_alpha);
    let width = image.width();
    match &mut image {
        DynamicImage::ImageRgba8(buffer) => plan.apply(buffer, width, true),
        DynamicImage::ImageRgb8(buffer) => plan.apply(buffer, width, false),
        _ => {}
    }
    // After the conversions, so a rotation moves 3 or 4 bytes a pixel rather than up to 16.
    image.apply_orientation(orientation);

    Ok(DecodedImage {
        format,
        width: probe.width,
        height: probe.height,
        pixel_width: image.width(),
        pixel_height: image.height(),
        has_alpha,
        pixels: image.into_bytes(),
        colour: plan.colour,
        has_location,
        warnings: plan.warning.into_iter().chain(first_frame_only).collect(),
        animation: None,
    })
}

/// A JPEG's pixels: from libjpeg-turbo at 1/`shrink` of the size when `turbo` (it decodes the
/// kind, and finds the `stored` size the limits and the memory grant were checked against), else from `image`'s decoder at full size. A file libjpeg-turbo fails on at full size is
/// given to `image`'s decoder too, which may be more lenient; at a reduced scale it is not, as
/// the memory granted was for that scale.
fn decode_jpeg(
    jpeg: &[u8],
    stored: (u32, u32),
    shrink: u32,
    turbo: bool,
) -> Result<DynamicImage, PipelineError> {
    let format = ImageFormat::Jpeg;
    let corrupt = |detail: String| PipelineError::Corrupt { format, detail };
    if turbo {
        match jpeg::decode_rgb(jpeg, stored, shrink) {
            Ok(decoded) => {
                return image::RgbImage::from_raw(decoded.width, decoded.height, decoded.pixels)
                    .map(DynamicImage::ImageRgb8)
                    .ok_or_else(|| corrupt("the decoder's buffer does not match its size".into()));
            }
            Err(detail) if shrink > 1 => return Err(corrupt(detail)),
            Err(_) => {}
        }
    }
    let from_decoder = |e| PipelineError::from_decoder(format, e);
    let decoder =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(jpeg)).map_err(from_decoder)?;
    DynamicImage::from_decoder(decoder).map_err(from_decoder)
}

/// A still WebP's pixels from libwebp (which must find the `stored` size the limits were checked
/// against); the first frame of an animation (one over the frame limits)
/// from `image`'s decoder.
fn decode_webp(webp: &[u8], stored: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let format = ImageFormat::WebP;
    let corrupt = || PipelineError::Corrupt {
        format,
        detail: "the decoder's buffer does not match its size".into(),
    };
    match libwebp::decode_still(webp, stored) {
        Ok(d) if d.has_alpha => image::RgbaImage::from_raw(d.width, d.height, d.pixels)
            .map(DynamicImage::ImageRgba8)
            .ok_or_else(corrupt),
        Ok(d) => image::RgbImage::from_raw(d.width, d.height, d.pixels)
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(corrupt),
        Err(libwebp::DecodeError::Truncated) => Err(PipelineError::Truncated { format }),
        Err(libwebp::DecodeError::Corrupt(detail)) => {
            Err(PipelineError::Corrupt { format, detail })
        }
        Err(libwebp::DecodeError::Animated) => {
            let from_decoder = |e| PipelineError::from_decoder(format, e);
            let decoder = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(webp))
                .map_err(from_decoder)?;
            DynamicImage::from_decoder(decoder).map_err(from_decoder)
        }
    }
}

/// A source whose header was read and checked, with its decoder ready.
struct Opened<D> {
    probe: Probe,
    decoder: D,
    orientation: Orientation,
    /// The embedded ICC profile, if any.
    icc: Option<Vec<u8>>,
    /// A PNG's gAMA and cHRM chunks.
    png_colour: Option<png::PngColour>,
    /// Why an animation is cut to its first frame, when it is.
    first_frame_only: Option<String>,
    /// Whether the file's pixels are greyscale (before they become RGB).
    grey: bool,
    has_location: bool,
    /// For a JPEG: decode at 1/`shrink` of the size (1, 2, 4 or 8).
    shrink: u32,
    /// For a JPEG: libjpeg-turbo decodes it (see `jpeg::Frame::turbo_decodes`).
    turbo: bool,
    /// The size in the header, as stored (before the EXIF orientation): what the limits were
    /// checked against, and all another decoder of the same file may find.
    stored: (u32, u32),
}

/// Sniffs, checks a JPEG reaches its end, reads the header, checks the limits and estimates the
/// memory: everything short of decoding pixels.
fn open<'a, R: BufRead + Seek + 'a>(
    reader: &'a mut R,
    limits: &Limits,
    specs: &[VariantSpec],
) -> Result<Opened<impl ImageDecoder + 'a>, PipelineError> {
    let format = sniff_source(reader)?;
    let found = animation::count_frames(format, reader);
    let file_bytes = reader.seek(SeekFrom::End(0)).map_err(PipelineError::read)?;
    reader.rewind().map_err(PipelineError::read)?;
    let png_colour = if format == ImageFormat::Png {
        Some(png::colour_chunks(reader).map_err(PipelineError::read)?)
    } else {
        None
    };
    let mut jpeg_frame = None;
    if format == ImageFormat::Jpeg {
        // Before decoding: the JPEG decoder would grey-fill a file that is cut short.
        let structure = jpeg::structure(&mut *reader).map_err(PipelineError::read)?;
        if !structure.whole {
            return Err(PipelineError::Truncated { format });
        }
        jpeg_frame = structure.frame;
        reader.rewind().map_err(PipelineError::read)?;
    }

    let mut image_reader = ImageReader::with_format(reader, format.to_image_crate());
    // No width or height limits here: we check those ourselves below, to say which limit and by
    // how much. The default allocation cap stays as a guard on metadata chunks and the like.
    image_reader.limits(image::Limits::default());
    let from_decoder = |e| PipelineError::from_decoder(format, e);
    // Constructing a decoder reads only the header (and, for JPEG, the file into memory).
    let mut decoder = image_reader.into_decoder().map_err(from_decoder)?;

    // Unreadable metadata is no reason to refuse a photo: an EXIF block browsers cannot read
    // either shows it unrotated; a profile that cannot be read is taken as sRGB (`colour.rs`).
    let exif = decoder.exif_metadata().ok().flatten();
    let has_location = exif.as_deref().is_some_and(exif::has_location);
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let grey = matches!(
        decoder.color_type(),
        ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
    );
    let (width, height) = decoder.dimensions();
    let (shown_width, shown_height) = if swaps_sides(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    limits.check(shown_width, shown_height)?;
    let (frames, first_frame_only) = match limits.animation_fits(found.frames, found.pixels) {
        _ if found.frames <= 1 => (1, None),
        Ok(()) => (found.frames, None),
        Err(reason) => (1, Some(format!("{reason}: only the first frame is kept"))),
    };
    // An animation is kept as stored: its frames are not turned by an EXIF orientation.
    let (shown_width, shown_height, orientation) = if frames > 1 {
        (width, height, Orientation::NoTransforms)
    } else {
        (shown_width, shown_height, orientation)
    };
    // Scaled only when libjpeg-turbo decodes it: the other decoder works at full size.
    let turbo = jpeg_frame.is_some_and(|f| f.turbo_decodes());
    let shrink = if turbo && frames == 1 {
        jpeg::shrink_for(shown_width, shown_height, specs)
    } else {
        1
    };
    let full_pixels = u64::from(width) * u64::from(height);
    let (decoded_bytes, decoded_pixels) = if shrink > 1 {
        let (w, h) = jpeg::shrunk(width, height, shrink);
        let pixels = u64::from(w) * u64::from(h);
        (pixels * 3, pixels)
    } else {
        (decoder.total_bytes(), full_pixels)
    };
    // A progressive JPEG's decoder keeps every coefficient (two bytes each) of every component
    // at full size until the last scan, whatever the output scale.
    let coefficients = match jpeg_frame {
        Some(frame) if frame.progressive => full_pixels * u64::from(frame.components) * 2,
        _ => 0,
    };
    let decoded_bytes = decoded_bytes.saturating_add(coefficients);
    let memory_bytes = memory_needed(
        (decoded_bytes, decoded_pixels),
        file_bytes,
        decoder.color_type(),
        orientation,
        variants_memory(shown_width, shown_height, specs),
        specs,
        (frames > 1).then_some(Animated {
            frames,
            pixels: found.pixels,
            width,
            height,
        }),
    );
    Ok(Opened {
        probe: Probe {
            format,
            width: shown_width,
            height: shown_height,
            memory_bytes,
            frames,
        },
        decoder,
        orientation,
        icc,
        png_colour,
        grey,
        has_location,
        first_frame_only,
        shrink,
        turbo,
        stored: (width, height),
    })
}

/// What the variants of a still `width` x `height` image hold at most: every variant's resized
/// pixels (all are resized before the encodes), and about twice the largest inside each WebP
/// encoder running at once (one a core at most).
fn variants_memory(width: u32, height: u32, specs: &[VariantSpec]) -> u64 {
    let mut planned: Vec<u64> = specs
        .iter()
        .map(|s| {
            let p = plan(width, height, s.fit(), s.max_width(), s.max_height());
            u64::from(p.width) * u64::from(p.height) * 4
        })
        .collect();
    planned.sort_unstable_by(|a, b| b.cmp(a));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    planned.iter().sum::<u64>() + planned.iter().take(cores).sum::<u64>() * 2
}

/// An animation kept whole, as the memory estimate needs it.
struct Animated {
    frames: u32,
    /// What decoding every frame takes (see `animation::FrameCount`).
    pixels: u64,
    width: u32,
    height: u32,
}

/// The estimate behind [`Probe::memory_bytes`]: the decoder's buffer (`decoded` bytes holding
/// `pixels` pixels), the file, the copies made after decoding, the variants and an animation.
fn memory_needed(
    (decoded, pixels): (u64, u64),
    file_bytes: u64,
    color: ColorType,
    orientation: Orientation,
    variant: u64,
    specs: &[VariantSpec],
    animated: Option<Animated>,
) -> u64 {
    let channels: u64 = if color.has_alpha() { 4 } else { 3 };
    // `into_rgb(a)8` keeps the decoder's buffer when it already is 8-bit RGB(A), else copies.
    let converted = if matches!(color, ColorType::Rgb8 | ColorType::Rgba8) {
        0
    } else {
        pixels * channels
    };
    let rotated = if orientation == Orientation::NoTransforms {
        0
    } else {
        pixels * channels
    };
    // An animation kept whole holds every frame (RGBA; each as large as its canvas, or its own
    // rectangle when that is larger), and a variant's frames all at once for its encoder, at the
    // size they are resized to (never larger than the canvas).
    let animation = animated.map_or(0, |a| {
        let resized = specs
            .iter()
            .map(|s| {
                let planned = plan(a.width, a.height, s.fit(), s.max_width(), s.max_height());
                u64::from(planned.width) * u64::from(planned.height) * 4
            })
            .max()
            .unwrap_or(0);
        (a.pixels * 4)
            .saturating_add(u64::from(a.frames).saturating_mul(resized))
            .saturating_add(pixels * 4)
    });
    decoded
        .saturating_add(animation)
        .saturating_add(converted)
        .saturating_add(rotated)
        .saturating_add(file_bytes)
        .saturating_add(variant)
}

/// Reads the first bytes and names the format, leaving the reader back at the start.
fn sniff_source(reader: &mut (impl Read + Seek)) -> Result<ImageFormat, PipelineError> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    reader
        .by_ref()
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(PipelineError::read)?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(PipelineError::read)?;
    match sniff(&head) {
        Sniffed::Image(format) => Ok(format),
        Sniffed::Other { mime } => Err(PipelineError::UnsupportedFormat { detected: mime }),
    }
}

/// Orientations that turn the image a quarter, so its width becomes its height.
fn swaps_sides(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}
