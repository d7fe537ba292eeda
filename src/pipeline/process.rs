//! The whole job for one upload: decode once, make every variant (encoding them side by side on
//! idle cores) and hand them to the sink, report progress, and describe what was produced.

use std::io::{Read, Seek};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;

use super::colour::Colour;
use super::control::Control;
use super::decode::{DecodedImage, decode_within};
use super::error::PipelineError;
use super::format::ImageFormat;
use super::limits::Limits;
use super::render::{Prepared, Rendered, encode_prepared, prepare, render_checked};
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
/// The image is checked against `limits` from its header, then decoded once (a JPEG at a reduced
/// scale when every variant is much smaller); every variant is made from that one decode, a
/// smaller one from a larger one's pixels when those are at least twice its size. The encodes,
/// most of the work, run side by side on the cores `control` lends. The output depends only on
/// the input, so running this again (a retried job) hands over identical bytes. Nothing reaches
/// the sink unless the source decodes: a rejected upload leaves no trace. Variants reach the sink
/// in the order of the specs. Spec names should be unique (settings check that).
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

    let rendered = render_all(&image, specs, control)?;
    let mut variants = Vec::with_capacity(specs.len());
    for (index, (spec, rendered)) in specs.iter().zip(rendered).enumerate() {
        control.stop.check()?;
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

/// Every spec's variant of `image`, in the order of `specs`.
fn render_all(
    image: &DecodedImage,
    specs: &[VariantSpec],
    control: &Control,
) -> Result<Vec<Rendered>, PipelineError> {
    let stop = &control.stop;
    if image.animation.is_some() {
        return specs
            .iter()
            .map(|spec| render_checked(image, spec, stop))
            .collect();
    }
    // Resized largest first, so each smaller one can start from a larger one's pixels. Resizing
    // is quick next to encoding; all are resized before any is encoded.
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| {
        std::cmp::Reverse(u64::from(specs[i].max_width()) * u64::from(specs[i].max_height()))
    });
    let mut prepared: Vec<Prepared<'_>> = Vec::with_capacity(specs.len());
    for &i in &order {
        stop.check()?;
        let next = prepare(image, &specs[i], &prepared)?;
        prepared.push(next);
    }
    // Encodes, largest first (the longest pole starts first), on this thread and one more for
    // each core lent while there is work left.
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let encode_next = || -> Vec<(usize, Result<Rendered, PipelineError>)> {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= order.len() || failed.load(Ordering::Relaxed) {
                return done;
            }
            let spec = &specs[order[k]];
            let result = stop
                .check()
                .and_then(|()| encode_prepared(&prepared[k], image.has_alpha, spec, stop));
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((order[k], result));
        }
    };
    let encode_next = &encode_next;
    let results = std::thread::scope(|scope| {
        // A thread the system cannot start now is a core not lent: the work goes on without it.
        let helpers: Vec<_> = (1..order.len())
            .map_while(|_| control.spare_cores.borrow())
            .map_while(|loan| {
                std::thread::Builder::new()
                    .name("pixdrop-encode".into())
                    .spawn_scoped(scope, move || {
                        let _loan = loan;
                        encode_next()
                    })
                    .ok()
            })
            .collect();
        let mut results = encode_next();
        for helper in helpers {
            match helper.join() {
                Ok(done) => results.extend(done),
                // A panic inside an encoder: carry it to the caller as if it happened here.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    let mut by_spec: Vec<Option<Rendered>> = (0..specs.len()).map(|_| None).collect();
    let mut errors = Vec::new();
    for (i, result) in results {
        match result {
            Ok(rendered) => by_spec[i] = Some(rendered),
            Err(e) => errors.push((i, e)),
        }
    }
    // The first spec's failure, whichever thread met it first.
    if let Some((_, e)) = errors.into_iter().min_by_key(|(i, _)| *i) {
        return Err(e);
    }
    by_spec
        .into_iter()
        .map(|r| r.ok_or(PipelineError::Stopped))
        .collect()
}
