//! The whole job for one upload: decode once, make and write every variant, report progress, and
//! describe what was produced.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::decode::decode;
use super::error::PipelineError;
use super::format::ImageFormat;
use super::limits::Limits;
use super::render::render;
use super::spec::VariantSpec;
use super::write::write_variant;

/// Progress, reported to the caller's `on_step` as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The source is decoded and oriented; `width` x `height` is its displayed size.
    Decoded { width: u32, height: u32 },
    /// The variant `name`, `specs[index]`, is on disk; `total` is `specs.len()`, so
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OriginalInfo {
    pub format: ImageFormat,
    /// Displayed size, after the EXIF orientation.
    pub width: u32,
    pub height: u32,
}

/// One variant file on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantOutput {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// File size.
    pub bytes: u64,
    /// `{out_dir}/{name}.webp`.
    pub path: PathBuf,
}

/// Turns the image at `source` into one WebP file per spec, `{out_dir}/{spec.name}.webp`.
///
/// The image is checked against `limits` from its header, then decoded once; every variant is
/// made from that one decode. Each file is written atomically, and the output depends only on
/// the input, so running this again (a retried job) rewrites identical files. `out_dir` is
/// created if missing, but only once the source has decoded: a rejected upload leaves no trace.
/// Spec names should be unique: a later spec with the same name replaces the earlier file.
pub fn process(
    source: &Path,
    out_dir: &Path,
    specs: &[VariantSpec],
    limits: &Limits,
    on_step: &mut dyn FnMut(Step),
) -> Result<Processed, PipelineError> {
    let image = decode(source, limits)?;
    let original = OriginalInfo {
        format: image.format(),
        width: image.width(),
        height: image.height(),
    };
    on_step(Step::Decoded {
        width: original.width,
        height: original.height,
    });

    std::fs::create_dir_all(out_dir).map_err(PipelineError::io("create", out_dir))?;
    let mut variants = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        let rendered = render(&image, spec)?;
        let path = write_variant(out_dir, spec.name(), rendered.webp())?;
        variants.push(VariantOutput {
            name: spec.name().to_string(),
            width: rendered.width(),
            height: rendered.height(),
            bytes: rendered.webp().len() as u64,
            path,
        });
        on_step(Step::VariantWritten {
            name: spec.name().to_string(),
            index,
            total: specs.len(),
        });
    }
    Ok(Processed { original, variants })
}
