//! One variant from a decoded image: crop and resize with `fast_image_resize`, then lossy WebP. An
//! animation has every frame resized alike and becomes an animated WebP (`animation.rs`).
//!
//! Alpha is premultiplied for the resize and divided back out after (the resizer's `use_alpha`
//! option), so colour under fully transparent pixels cannot bleed into the visible edge: without
//! it, transparent black next to opaque white averages to a dark grey fringe.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use std::borrow::Cow;
use std::io::Cursor;

use super::animation;
use super::control::StopFlag;
use super::decode::DecodedImage;
use super::error::PipelineError;
use super::geometry::{Crop, Plan, plan, whole};
use super::libwebp::{self, EncodeError, WebpBytes};
use super::spec::VariantSpec;

/// An encoded variant, still in memory.
pub struct Rendered {
    width: u32,
    height: u32,
    webp: Encoded,
}

/// The WebP's bytes: libwebp's own buffer for a still image, handed over as is rather than copied
/// into a Vec; an animation's, copied out of the encoder.
enum Encoded {
    Still(WebpBytes),
    Animated { bytes: Vec<u8>, animated: bool },
}

impl Rendered {
    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The WebP file's bytes.
    pub fn webp(&self) -> &[u8] {
        match &self.webp {
            Encoded::Still(memory) => memory,
            Encoded::Animated { bytes, .. } => bytes,
        }
    }

    /// Whether it is an animated WebP.
    pub fn animated(&self) -> bool {
        matches!(self.webp, Encoded::Animated { animated: true, .. })
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.webp().len())
            .finish()
    }
}

/// Makes `spec`'s variant of `image` and encodes it as lossy WebP at the spec's quality and
/// effort, keeping the alpha channel when the image has one.
pub fn render(image: &DecodedImage, spec: &VariantSpec) -> Result<Rendered, PipelineError> {
    render_checked(image, spec, &StopFlag::new())
}

/// [`render`], stopping before the resize or the encode once `stop` is raised.
pub(crate) fn render_checked(
    image: &DecodedImage,
    spec: &VariantSpec,
    stop: &StopFlag,
) -> Result<Rendered, PipelineError> {
    stop.check()?;
    if image.animation.is_some() {
        return render_animation(image, spec, stop);
    }
    let prepared = prepare(image, spec, &[])?;
    stop.check()?;
    encode_prepared(&prepared, image.has_alpha, spec, stop)
}

/// A still variant's pixels, resized and ready for the encoder.
pub(crate) struct Prepared<'a> {
    pixels: Cow<'a, [u8]>,
    width: u32,
    height: u32,
    /// Whether they show the whole image (nothing cropped away), so a smaller variant can be
    /// resized from them instead of from the decoded image.
    whole: bool,
}

/// Resizes `image` to `spec`'s planned size, from the smallest of `earlier` (variants already
/// prepared) that shows the whole image at least twice as large as needed on both sides, else
/// from the decoded pixels. Twice: Lanczos then still has whole source pixels to weigh, so the
/// result is as sharp as one made from the decoded image (libvips keeps the same margin).
pub(crate) fn prepare<'a>(
    image: &'a DecodedImage,
    spec: &VariantSpec,
    earlier: &[Prepared<'a>],
) -> Result<Prepared<'a>, PipelineError> {
    let planned = plan(
        image.width,
        image.height,
        spec.fit(),
        spec.max_width(),
        spec.max_height(),
    );
    let whole = planned.crop == whole(image.width, image.height);
    let from = earlier
        .iter()
        .filter(|p| p.whole && p.width >= planned.width * 2 && p.height >= planned.height * 2)
        .min_by_key(|p| u64::from(p.width) * u64::from(p.height));
    let (pixels, width, height) = match from {
        Some(p) => (&*p.pixels, p.width, p.height),
        None => (&image.pixels[..], image.pixel_width, image.pixel_height),
    };
    let scaled = scale_plan(&planned, image.width, image.height, width, height);
    if scaled.is_identity(width, height) && from.is_none() {
        return Ok(Prepared {
            pixels: Cow::Borrowed(&image.pixels),
            width,
            height,
            whole,
        });
    }
    let resized = resize(pixels, width, height, image.has_alpha, &scaled).map_err(|reason| {
        PipelineError::Encode {
            variant: spec.name().to_string(),
            reason,
            transient: false,
        }
    })?;
    Ok(Prepared {
        pixels: Cow::Owned(resized),
        width: planned.width,
        height: planned.height,
        whole,
    })
}

/// Encodes prepared pixels as `spec` asks; raising `stop` ends the encode early.
pub(crate) fn encode_prepared(
    prepared: &Prepared<'_>,
    has_alpha: bool,
    spec: &VariantSpec,
    stop: &StopFlag,
) -> Result<Rendered, PipelineError> {
    let fail = |e: EncodeError| {
        if stop.is_stopped() {
            return PipelineError::Stopped;
        }
        PipelineError::Encode {
            variant: spec.name().to_string(),
            reason: e.reason,
            transient: e.transient,
        }
    };
    let config = libwebp::config(spec.quality(), spec.effort()).map_err(fail)?;
    let webp = libwebp::encode_still(
        &prepared.pixels,
        has_alpha,
        prepared.width,
        prepared.height,
        &config,
        stop.as_atomic(),
    )
    .map_err(fail)?;
    Ok(Rendered {
        width: prepared.width,
        height: prepared.height,
        webp: Encoded::Still(webp),
    })
}

/// Every frame resized alike, then one animated WebP. Animations are never decoded scaled.
fn render_animation(
    image: &DecodedImage,
    spec: &VariantSpec,
    stop: &StopFlag,
) -> Result<Rendered, PipelineError> {
    let fail = |reason: String, transient| PipelineError::Encode {
        variant: spec.name().to_string(),
        reason,
        transient,
    };
    let config = libwebp::config(spec.quality(), spec.effort())
        .map_err(|e: EncodeError| fail(e.reason, e.transient))?;
    let plan = plan(
        image.width,
        image.height,
        spec.fit(),
        spec.max_width(),
        spec.max_height(),
    );
    let frames = image.animation.as_deref().unwrap_or_default();
    let mut resized = Vec::with_capacity(frames.len());
    for frame in frames {
        stop.check()?;
        let pixels = if plan.is_identity(image.width, image.height) {
            frame.pixels.clone()
        } else {
            resize(&frame.pixels, image.width, image.height, true, &plan)
                .map_err(|reason| fail(reason, false))?
        };
        resized.push((pixels, frame.duration_ms));
    }
    stop.check()?;
    let webp = animation::encode(&resized, plan.width, plan.height, &config)
        .map_err(|reason| fail(reason, false))?;
    // libwebp writes a still image when every frame turned out the same.
    let still = animation::count_frames(super::ImageFormat::WebP, &mut Cursor::new(&webp));
    Ok(Rendered {
        width: plan.width,
        height: plan.height,
        webp: Encoded::Animated {
            bytes: webp,
            animated: still.frames > 1,
        },
    })
}

/// `planned` (made for the `full_width` x `full_height` image) for pixels of the same image at
/// `width` x `height`: the crop scaled to them, kept inside them against rounding.
fn scale_plan(planned: &Plan, full_width: u32, full_height: u32, width: u32, height: u32) -> Plan {
    if (width, height) == (full_width, full_height) {
        return *planned;
    }
    let sx = f64::from(width) / f64::from(full_width);
    let sy = f64::from(height) / f64::from(full_height);
    let left = (planned.crop.left * sx).min(f64::from(width));
    let top = (planned.crop.top * sy).min(f64::from(height));
    Plan {
        crop: Crop {
            left,
            top,
            width: (planned.crop.width * sx).min(f64::from(width) - left),
            height: (planned.crop.height * sy).min(f64::from(height) - top),
        },
        width: planned.width,
        height: planned.height,
    }
}

/// Resizes the planned crop of `pixels` (`width` x `height`, RGBA when `has_alpha`, else RGB) to
/// the planned size; returns the new pixel rows.
fn resize(
    pixels: &[u8],
    width: u32,
    height: u32,
    has_alpha: bool,
    plan: &Plan,
) -> Result<Vec<u8>, String> {
    let pixel_type = if has_alpha {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let src = ImageRef::new(width, height, pixels, pixel_type)
        .map_err(|e| format!("bad source buffer: {e}"))?;
    let mut dst = Image::new(plan.width, plan.height, pixel_type);
    let crop = plan.crop;
    // Lanczos3: the sharpest of the usual downscaling filters, and what photo tools default to.
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(crop.left, crop.top, crop.width, crop.height)
        .use_alpha(true);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| format!("resize failed: {e}"))?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::format::ImageFormat;
    use crate::pipeline::spec::Fit;

    /// Left half fully transparent black, right half opaque white.
    fn half_transparent(width: u32, height: u32) -> DecodedImage {
        let mut pixels = Vec::new();
        for _ in 0..height {
            for x in 0..width {
                pixels.extend(if x < width / 2 {
                    [0, 0, 0, 0]
                } else {
                    [255; 4]
                });
            }
        }
        DecodedImage {
            format: ImageFormat::Png,
            width,
            height,
            pixel_width: width,
            pixel_height: height,
            has_alpha: true,
            pixels,
            colour: Default::default(),
            has_location: false,
            warnings: Vec::new(),
            animation: None,
        }
    }

    #[test]
    fn resizing_premultiplies_alpha_so_edges_stay_white_not_grey() {
        // Proves no dark fringe: every visible pixel of white-on-transparent stays white.
        let image = half_transparent(64, 64);
        let spec = VariantSpec::new("t", 16, 16, Fit::Inside, 80.0).unwrap();
        let plan = plan(64, 64, spec.fit(), 16, 16);
        let out = resize(&image.pixels, image.width, image.height, true, &plan).unwrap();
        let mut partly_visible = 0;
        for px in out.chunks_exact(4) {
            if px[3] > 0 {
                assert!(px[..3].iter().all(|&c| c >= 250), "fringe pixel {px:?}");
            }
            partly_visible += usize::from(px[3] > 0 && px[3] < 255);
        }
        // Lanczos spreads the edge over a few pixels, so the check above saw blended alpha.
        assert!(partly_visible > 0);
    }

    #[test]
    fn an_image_already_inside_the_box_is_encoded_without_resizing() {
        // Proves the no-upscale path hands the decoded pixels straight to the encoder.
        let image = half_transparent(8, 4);
        let rendered = render(&image, &VariantSpec::thumb()).unwrap();
        assert_eq!((rendered.width(), rendered.height()), (8, 4));
        assert!(rendered.webp().starts_with(b"RIFF"));
    }
}
