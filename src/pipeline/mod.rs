//! The image pipeline: one uploaded file in, WebP variants out.
//!
//! Pure and synchronous: no async runtime, no queue, nothing else of pixdrop, so it could be
//! published on its own. A photo flows through it like this:
//!
//! 1. [`sniff`] names the format from the first bytes (never the filename or Content-Type).
//! 2. [`decode`] reads the header, checks it against [`Limits`] before any pixel is allocated,
//!    decodes the first frame once, settles on 8-bit RGB(A), converts a tagged image's colours to
//!    sRGB (`colour.rs`) and applies the EXIF orientation.
//! 3. [`render`] makes one [`VariantSpec`] from that decoded image: crop and resize with
//!    `fast_image_resize` (alpha premultiplied), then lossy WebP.
//! 4. [`process`] does all of that for one source and hands each variant to a [`VariantSink`]
//!    (pixdrop's storage, or memory), reporting each [`Step`] as it goes. The pipeline reads from
//!    any `Read + Seek` and never names a path.
//!
//! Every failure is a [`PipelineError`] with a stable `code()` and `is_permanent()`, so a worker
//! knows whether a retry could help.

mod animation;
mod colour;
mod control;
mod decode;
mod error;
mod exif;
mod format;
mod geometry;
mod jpeg;
mod libwebp;
mod limits;
mod png;
mod process;
mod render;
mod sink;
mod spec;

#[cfg(test)]
pub(crate) mod tests;

/// Bumped whenever the same upload with the same settings would give different variant bytes (a
/// codec's upgrade, a changed default): variants kept for reuse (storage's `made`) were made
/// under one version and are reused only under it.
pub const OUTPUT_VERSION: u32 = 1;

pub use colour::Colour;
pub use control::{Control, CoreLoan, SpareCores, StopFlag};
pub use decode::{DecodedImage, Probe, decode, decode_within, probe};
pub use error::{PipelineError, SizeLimit};
pub use format::{ImageFormat, SNIFF_LEN, Sniffed, accepted_in_words, sniff};
pub use libwebp::MAX_EFFORT;
pub use limits::Limits;
pub use process::{OriginalInfo, Processed, Step, VariantOutput, process};
pub use render::{Rendered, render};
pub use sink::VariantSink;
pub use spec::{DEFAULT_EFFORT, Fit, SpecError, VariantSpec};
