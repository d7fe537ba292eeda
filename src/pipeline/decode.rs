//! From a file on disk to one upright 8-bit RGB or RGBA image in memory, refusing anything that
//! is not an accepted image, too large, damaged or cut short, and deciding that before the pixel
//! memory is allocated wherever the header allows.

use std::io::{BufReader, Read, Seek, SeekFrom};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use super::error::PipelineError;
use super::format::{ImageFormat, SNIFF_LEN, Sniffed, sniff};
use super::jpeg;
use super::limits::Limits;

/// A decoded, oriented image, ready to be made into any number of variants.
#[derive(Clone)]
pub struct DecodedImage {
    pub(crate) format: ImageFormat,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Whether `pixels` is RGBA (4 bytes a pixel) rather than RGB (3).
    pub(crate) has_alpha: bool,
    /// Rows top to bottom, no padding.
    pub(crate) pixels: Vec<u8>,
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
    /// 8 bits a channel. For callers that want more from one decode (a placeholder colour, say).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }
}

impl std::fmt::Debug for DecodedImage {
    // Not derived: printing megabytes of pixels helps nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedImage")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("has_alpha", &self.has_alpha)
            .finish_non_exhaustive()
    }
}

/// Decodes the image read from `source` (a file, or bytes in memory): sniffs the format, checks
/// the header against `limits`, decodes the first frame, applies the EXIF orientation and converts
/// to 8 bits a channel.
pub fn decode(source: impl Read + Seek, limits: &Limits) -> Result<DecodedImage, PipelineError> {
    let mut reader = BufReader::new(source);
    let format = sniff_source(&mut reader)?;
    if format == ImageFormat::Jpeg {
        // Before decoding: the JPEG decoder would grey-fill a file that is cut short.
        let whole = jpeg::reaches_end_marker(&mut reader).map_err(PipelineError::read)?;
        if !whole {
            return Err(PipelineError::Truncated { format });
        }
        reader.rewind().map_err(PipelineError::read)?;
    }

    let mut image_reader = ImageReader::with_format(reader, format.to_image_crate());
    // No width or height limits here: we check those ourselves below, to say which limit and by
    // how much. The default allocation cap stays as a guard on metadata chunks and the like.
    image_reader.limits(image::Limits::default());
    let from_decoder = |e| PipelineError::from_decoder(format, e);
    // Constructing a decoder reads only the header (and, for JPEG, the file into memory).
    let mut decoder = image_reader.into_decoder().map_err(from_decoder)?;

    // An unreadable EXIF block is no reason to refuse a photo; browsers show it unrotated too.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (width, height) = decoder.dimensions();
    let (shown_width, shown_height) = if swaps_sides(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    limits.check(shown_width, shown_height)?;

    // For GIF and WebP this is the first frame of an animation.
    let image = DynamicImage::from_decoder(decoder).map_err(from_decoder)?;
    let has_alpha = image.color().has_alpha();
    // 16-bit, float, grey and palette images all end up as 8-bit RGB(A): WebP holds nothing else,
    // and one pixel layout keeps resizing simple. `into_*` reuses the buffer when it already is.
    let mut image = if has_alpha {
        DynamicImage::ImageRgba8(image.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.into_rgb8())
    };
    // After the conversion, so a rotation moves 3 or 4 bytes a pixel rather than up to 16.
    image.apply_orientation(orientation);

    Ok(DecodedImage {
        format,
        width: image.width(),
        height: image.height(),
        has_alpha,
        pixels: image.into_bytes(),
    })
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
