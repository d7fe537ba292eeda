//! The whole job for one upload: decode once, make every variant and hand it to the sink, report
//! progress, and describe what was produced.

use std::io::{Read, Seek};

use serde::Serialize;

use super::colour::Colour;
use super::control::Control;
use super::decode::decode_within;
use super::error::PipelineError;
use super::format::ImageFormat;
use super::limits::Limits;
use super::render::render_checked;
use super::sink::VariantSink;
use super::spec::VariantSpec;

/// Progress, reported to the caller's `on_step` as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The source is decoded and oriented; `width` x `height` is its displayed size.
    Decoded { width: u32, height: u32 },
    /// The variant `name`, `specs[index]`, is in the sink; `total` is `specs.len()`, so
    /// `index + 1` of `total` are done.
    VariantWritten {
        name: String,
        index: usize,
        total: usize,
    },
}

/// What [`process`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Processed {
    pub original: OriginalInfo,
    /// In the order of the specs.
    pub variants: Vec<VariantOutput>,
}

/// The uploaded image as decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginalInfo {
    pub format: ImageFormat,
    /// Displayed size, after the EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// Its colour profile, and whether its colours were converted to sRGB.
    pub colour: Colour,
    /// Whether its EXIF holds a GPS position (the variants carry no EXIF).
    pub has_location: bool,
    /// What was worked around, in words (a colour profile that could not be used).
    pub warnings: Vec<String>,
}

/// One variant handed to the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantOutput {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Size of the WebP.
    pub bytes: u64,
    /// Whether it is an animated WebP (the original was an animation kept whole).
    pub animated: bool,
}

/// Turns the image read from `source` into one WebP per spec, each handed to `sink` under the
/// spec's name.
///
/// The image is checked against `limits` from its header, then decoded once; every variant is
/// made from that one decode. The output depends only on the input, so running this again (a
/// retried job) hands over identical bytes. Nothing reaches the sink unless the source decodes:
/// a rejected upload leaves no trace. Spec names should be unique (settings check that).
///
/// `control` bounds the memory the run may use and lets the caller stop it between steps (then
/// the error is [`PipelineError::Stopped`]).
pub fn process(
    source: impl Read + Seek,
    specs: &[VariantSpec],
    limits: &Limits,
    control: &Control,
    sink: &mut dyn VariantSink,
    on_step: &mut dyn FnMut(Step),
) -> Result<Processed, PipelineError> {
    let image = decode_within(source, limits, specs, control)?;
    let original = OriginalInfo {
        format: image.format(),
        width: image.width(),
        height: image.height(),
        colour: image.colour().clone(),
        has_location: image.has_location(),
        warnings: image.warnings().to_vec(),
    };
    on_step(Step::Decoded {
        width: original.width,
        height: original.height,
    });

    let mut variants = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        let rendered = render_checked(&image, spec, &control.stop)?;
        sink.put(spec.name(), rendered.webp())
            .map_err(|source| PipelineError::Store {
                variant: spec.name().to_owned(),
                source,
            })?;
        variants.push(VariantOutput {
            name: spec.name().to_string(),
            width: rendered.width(),
            height: rendered.height(),
            bytes: rendered.webp().len() as u64,
            animated: rendered.animated(),
        });
        on_step(Step::VariantWritten {
            name: spec.name().to_string(),
            index,
            total: specs.len(),
        });
    }
    Ok(Processed { original, variants })
}
