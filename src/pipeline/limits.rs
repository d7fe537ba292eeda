//! How big an image we agree to decode, checked against the header before any pixel memory is
//! allocated: a 100 KB PNG can claim to be 100000x100000 and ask for 40 GB.

use serde::{Deserialize, Serialize};

use super::error::{PipelineError, SizeLimit};

/// Upper bounds on an image's size, checked on its displayed (EXIF-oriented) dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Width times height. This is what bounds decode memory (4 bytes a pixel at 8 bits, up to
    /// 16 for 32-bit float TIFF), so it is checked first.
    pub max_pixels: u64,
    pub max_width: u32,
    pub max_height: u32,
    /// Memory one process may spend decoding and rendering at once, shared by its workers: an
    /// image waits until its estimate (see `Probe::memory_bytes`) fits, and one that would never
    /// fit is refused. Not a per-image limit: the worker holds the budget.
    pub memory_budget_bytes: u64,
    /// Frames an animated GIF or WebP may keep; a longer one becomes its first frame, with a
    /// warning in the job's result.
    pub max_frames: u32,
    /// Frames times canvas pixels an animation may keep (what its frames hold in memory, and what
    /// each variant resizes), checked likewise.
    pub max_animation_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_width: 20_000,
            max_height: 20_000,
            memory_budget_bytes: 1 << 30,
            max_frames: 300,
            max_animation_pixels: 100_000_000,
        }
    }
}

/// Below this even an ordinary phone photo would not fit.
const MIN_MEMORY_BUDGET: u64 = 64 << 20;

impl Limits {
    /// What is wrong with these limits themselves, as `(field, "field (value) must ...")` pairs:
    /// a zero limit would refuse every image.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        let mut at_least_one = |field: &'static str, value: u64| {
            if value == 0 {
                found.push((field, format!("{field} ({value}) must be at least 1")));
            }
        };
        at_least_one("max_pixels", self.max_pixels);
        at_least_one("max_width", u64::from(self.max_width));
        at_least_one("max_height", u64::from(self.max_height));
        at_least_one("max_frames", u64::from(self.max_frames));
        at_least_one("max_animation_pixels", self.max_animation_pixels);
        if self.memory_budget_bytes < MIN_MEMORY_BUDGET {
            found.push((
                "memory_budget_bytes",
                format!(
                    "memory_budget_bytes ({}) must be at least {MIN_MEMORY_BUDGET} (64 MiB)",
                    self.memory_budget_bytes
                ),
            ));
        }
        found
    }

    /// `Ok` if an image of this size may be decoded; otherwise the limit it breaks.
    pub fn check(&self, width: u32, height: u32) -> Result<(), PipelineError> {
        let too_large = |limit| PipelineError::TooLarge {
            width,
            height,
            limit,
        };
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(too_large(SizeLimit::Pixels {
                max: self.max_pixels,
            }));
        }
        if width > self.max_width {
            return Err(too_large(SizeLimit::Width {
                max: self.max_width,
            }));
        }
        if height > self.max_height {
            return Err(too_large(SizeLimit::Height {
                max: self.max_height,
            }));
        }
        Ok(())
    }
}

impl Limits {
    /// `Ok` if an animation of `frames` frames holding `total` pixels in all may be kept whole;
    /// otherwise why not, in words.
    pub fn animation_fits(&self, frames: u32, total: u64) -> Result<(), String> {
        if frames > self.max_frames {
            return Err(format!(
                "the animation has {frames} frames, more than the {} kept",
                self.max_frames
            ));
        }
        if total > self.max_animation_pixels {
            return Err(format!(
                "the animation's {frames} frames hold {} megapixels, more than the {} kept",
                megapixels(total),
                megapixels(self.max_animation_pixels)
            ));
        }
        Ok(())
    }
}

/// `50`, `0.3`, `10000`: megapixels with at most one decimal, none when it is `.0`.
pub(crate) fn megapixels(pixels: u64) -> String {
    let tenths = (pixels + 50_000) / 100_000;
    match tenths % 10 {
        0 => format!("{}", tenths / 10),
        d => format!("{}.{d}", tenths / 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_fifty_megapixels_and_twenty_thousand_a_side() {
        // Proves the defaults the rest of pixdrop documents.
        let limits = Limits::default();
        assert_eq!(
            (limits.max_pixels, limits.max_width, limits.max_height),
            (50_000_000, 20_000, 20_000)
        );
    }

    #[test]
    fn an_image_exactly_at_every_limit_is_accepted() {
        // Proves the limits are inclusive.
        let limits = Limits {
            max_pixels: 200,
            max_width: 20,
            max_height: 10,
            ..Limits::default()
        };
        assert!(limits.check(20, 10).is_ok());
    }

    #[test]
    fn the_pixel_limit_is_reported_before_the_side_limits() {
        // Proves a bomb is described by its area, the number that says why it was refused.
        let err = Limits::default().check(100_000, 100_000).unwrap_err();
        assert_eq!(err.code(), "image-too-large");
        assert!(err.is_permanent());
        assert_eq!(
            err.to_string(),
            "image is 100000x100000 (10000 megapixels); the limit is 50 megapixels"
        );
    }

    #[test]
    fn a_long_thin_image_breaks_the_width_limit() {
        // Proves each side is limited on its own, and the message names the side.
        let err = Limits::default().check(30_000, 10).unwrap_err();
        assert!(matches!(
            err,
            PipelineError::TooLarge {
                limit: SizeLimit::Width { max: 20_000 },
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "image is 30000 pixels wide; the limit is 20000"
        );
        let err = Limits::default().check(10, 30_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 30000 pixels tall; the limit is 20000"
        );
    }

    #[test]
    fn megapixels_are_rounded_to_one_decimal() {
        // Proves the numbers in messages read naturally.
        assert_eq!(megapixels(50_000_000), "50");
        assert_eq!(megapixels(12_345_678), "12.3");
        assert_eq!(megapixels(300_000), "0.3");
        assert_eq!(megapixels(10_000_000_000), "10000");
    }
}
