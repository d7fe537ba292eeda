//! Colour management. An image's numbers mean what its embedded ICC profile says (Adobe RGB from a
//! camera, Display P3 from a phone); a WebP without a profile is read by every browser as sRGB. So
//! a tagged image's pixels are converted to sRGB, with `moxcms`, before anything is resized.
//!
//! Untagged images are taken as sRGB and cost nothing. A profile that turns out to be sRGB (most
//! JPEGs carry one) is recognised by running a few colours through its transform, and the pixels
//! are left alone. A profile that cannot be read, or that claims a colour space the pixels do not
//! have, is reported as a warning and the pixels are taken as sRGB: a photo is never refused for
//! its profile. Grey images stay grey (their profiles' curves are close to sRGB's); CMYK images
//! are converted to RGB by the decoder, whose result is kept.

use std::sync::Arc;

use moxcms::{ColorProfile, DataColorSpace, Layout, ProfileText, TransformOptions};

use super::png::PngColour;
use serde::Serialize;

/// What the source said of its colours, and what was done about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Colour {
    /// The embedded profile's description ("Adobe RGB (1998)"), when there was a readable one.
    pub profile: Option<String>,
    /// Whether the pixels were converted to sRGB (not for untagged or sRGB images).
    pub converted: bool,
}

/// What to do with the decoded pixels: [`Plan::apply`] converts them, if anything is to be done.
pub(crate) struct Plan {
    pub colour: Colour,
    /// Why the profile was not used, for the job's result.
    pub warning: Option<String>,
    transform: Option<Arc<moxcms::Transform8BitExecutor>>,
}

/// Rows converted at a time: the scratch buffer stays small whatever the image's size.
const ROWS_AT_ONCE: usize = 64;

impl Plan {
    /// Nothing to do: untagged.
    pub fn none() -> Self {
        Self {
            colour: Colour::default(),
            warning: None,
            transform: None,
        }
    }

    /// The plan for pixels decoded as RGB(A) (`grey` when the source was greyscale), tagged with
    /// `icc` if anything.
    pub fn for_profile(icc: Option<&[u8]>, grey: bool, has_alpha: bool) -> Self {
        let Some(icc) = icc.filter(|icc| !icc.is_empty()) else {
            return Self::none();
        };
        // The profile comes from the file: a parser that panics on it must not cost the photo.
        let parsed = std::panic::catch_unwind(|| ColorProfile::new_from_slice(icc))
            .unwrap_or(Err(moxcms::CmsError::InvalidProfile));
        let profile = match parsed {
            Ok(profile) => profile,
            Err(e) => {
                return Self::warn(
                    None,
                    format!(
                        "the embedded colour profile could not be read ({e}); colours taken as sRGB"
                    ),
                );
            }
        };
        let name = profile.description.as_ref().and_then(text_of);
        Self::for_colour_profile(profile, name, grey, has_alpha)
    }

    /// The plan for a PNG without a profile, from its `gAMA` and `cHRM` chunks. Values close to
    /// sRGB's (what most writers put there) are taken as sRGB, as browsers do; nonsense values are
    /// a warning.
    pub fn for_png(png: PngColour, grey: bool, has_alpha: bool) -> Self {
        if png.overridden || grey || (png.gamma.is_none() && png.chromaticities.is_none()) {
            return Self::none();
        }
        const SRGB_CHROMATICITIES: [u32; 8] =
            [31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000];
        let srgb_like = png.gamma.is_none_or(|g| (45000..=46000).contains(&g))
            && png.chromaticities.is_none_or(|c| {
                c.iter()
                    .zip(SRGB_CHROMATICITIES)
                    .all(|(v, s)| v.abs_diff(s) <= 1000)
            });
        if srgb_like {
            return Self::none();
        }
        let ignored = |what: &str| {
            Self::warn(
                None,
                format!("the PNG's {what} makes no sense; colours taken as sRGB"),
            )
        };
        let mut profile = ColorProfile::new_srgb();
        profile.description = None;
        if let Some(gamma) = png.gamma {
            // gAMA is the encoding exponent: pixels are decoded with its inverse.
            let exponent = 100_000.0 / f64::from(gamma.max(1));
            if !(0.2..=5.0).contains(&exponent) {
                return ignored("gAMA chunk");
            }
            let curve = moxcms::ToneReprCurve::Parametric(vec![exponent as f32]);
            profile.red_trc = Some(curve.clone());
            profile.green_trc = Some(curve.clone());
            profile.blue_trc = Some(curve);
        }
        // Without cHRM the primaries stay sRGB's.
        if let Some(c) = png.chromaticities {
            let xy: Vec<f32> = c.iter().map(|v| *v as f32 / 100_000.0).collect();
            // Each point inside the chromaticity diagram's square, and the primaries spanning a
            // triangle (collinear ones leave no matrix to convert with).
            let triangle =
                ((xy[4] - xy[2]) * (xy[7] - xy[3]) - (xy[6] - xy[2]) * (xy[5] - xy[3])).abs() / 2.0;
            let plausible = triangle > 0.01
                && xy
                    .chunks(2)
                    .all(|p| p[0] > 0.0 && p[1] > 0.01 && p[0] + p[1] <= 1.0);
            if !plausible {
                return ignored("cHRM chunk");
            }
            profile.update_rgb_colorimetry(
                moxcms::XyY::new(f64::from(xy[0]), f64::from(xy[1]), 1.0),
                moxcms::ColorPrimaries {
                    red: moxcms::Chromaticity::new(xy[2], xy[3]),
                    green: moxcms::Chromaticity::new(xy[4], xy[5]),
                    blue: moxcms::Chromaticity::new(xy[6], xy[7]),
                },
            );
        }
        profile.cicp = None;
        Self::for_colour_profile(profile, Some("PNG gAMA/cHRM".to_owned()), false, has_alpha)
    }

    fn for_colour_profile(
        profile: ColorProfile,
        name: Option<String>,
        grey: bool,
        has_alpha: bool,
    ) -> Self {
        match (profile.color_space, grey) {
            (DataColorSpace::Rgb, false) => {}
            // Grey stays grey; a CMYK image was converted by its decoder.
            (DataColorSpace::Gray, true) | (DataColorSpace::Cmyk, false) => {
                return Self {
                    colour: Colour {
                        profile: name,
                        converted: false,
                    },
                    warning: None,
                    transform: None,
                };
            }
            (claimed, _) => {
                let pixels = if grey { "greyscale" } else { "RGB" };
                return Self::warn(
                    name,
                    format!(
                        "the embedded colour profile is for {claimed:?} data but the pixels are {pixels}; colours taken as sRGB"
                    ),
                );
            }
        }
        let layout = if has_alpha { Layout::Rgba } else { Layout::Rgb };
        let srgb = ColorProfile::new_srgb();
        let made = std::panic::catch_unwind(|| {
            profile.create_transform_8bit(layout, &srgb, layout, TransformOptions::default())
        })
        .unwrap_or(Err(moxcms::CmsError::InvalidProfile));
        let transform = match made {
            Ok(transform) => transform,
            Err(e) => {
                return Self::warn(
                    name,
                    format!(
                        "the embedded colour profile cannot be applied ({e}); colours taken as sRGB"
                    ),
                );
            }
        };
        let converted = !is_identity(transform.as_ref(), layout);
        Self {
            colour: Colour {
                profile: name,
                converted,
            },
            warning: None,
            transform: converted.then_some(transform),
        }
    }

    fn warn(profile: Option<String>, warning: String) -> Self {
        Self {
            colour: Colour {
                profile,
                converted: false,
            },
            warning: Some(warning),
            transform: None,
        }
    }

    /// Converts `pixels` (rows of `width` pixels, RGBA when `has_alpha`, else RGB) in place, a
    /// few rows at a time. A transform that fails midway leaves the rest as they were and says so.
    pub fn apply(&mut self, pixels: &mut [u8], width: u32, has_alpha: bool) {
        let Some(transform) = &self.transform else {
            return;
        };
        let channels = if has_alpha { 4 } else { 3 };
        let chunk = (width as usize * channels * ROWS_AT_ONCE).max(channels);
        let mut scratch = vec![0u8; chunk.min(pixels.len())];
        for rows in pixels.chunks_mut(chunk) {
            let out = &mut scratch[..rows.len()];
            if let Err(e) = transform.transform(rows, out) {
                self.warning = Some(format!(
                    "the colour conversion failed ({e}); part of the image kept its colours"
                ));
                return;
            }
            rows.copy_from_slice(out);
        }
    }
}

/// Whether the transform leaves colours as they are (an sRGB profile): greys, primaries and a few
/// mixtures come out within one step of what went in.
fn is_identity(transform: &moxcms::Transform8BitExecutor, layout: Layout) -> bool {
    const PROBES: [[u8; 3]; 10] = [
        [0, 0, 0],
        [255, 255, 255],
        [128, 128, 128],
        [32, 32, 32],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [200, 120, 40],
        [40, 160, 220],
        [250, 220, 10],
    ];
    let channels = if layout == Layout::Rgba { 4 } else { 3 };
    let src: Vec<u8> = PROBES
        .iter()
        .flat_map(|rgb| rgb.iter().copied().chain((channels == 4).then_some(255)))
        .collect();
    let mut dst = vec![0u8; src.len()];
    transform.transform(&src, &mut dst).is_ok()
        && src.iter().zip(&dst).all(|(a, b)| a.abs_diff(*b) <= 1)
}

/// A profile text's words, in English where it has a choice.
fn text_of(text: &ProfileText) -> Option<String> {
    let words = match text {
        ProfileText::PlainString(s) => s.clone(),
        ProfileText::Description(d) => d.ascii_string.clone(),
        ProfileText::Localizable(strings) => strings
            .iter()
            .find(|s| s.language == "en")
            .or(strings.first())?
            .value
            .clone(),
    };
    // Profile texts come from the file: keep them short and printable.
    let words: String = words
        .trim_matches(char::from(0))
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    (!words.is_empty()).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icc(profile: &ColorProfile) -> Vec<u8> {
        profile.encode().unwrap()
    }

    #[test]
    fn untagged_and_srgb_images_are_left_alone() {
        let untagged = Plan::for_profile(None, false, false);
        assert_eq!(untagged.colour, Colour::default());
        let srgb = Plan::for_profile(Some(&icc(&ColorProfile::new_srgb())), false, true);
        assert!(!srgb.colour.converted && srgb.warning.is_none());
        assert!(srgb.transform.is_none(), "no per-pixel work for sRGB");
    }

    #[test]
    fn adobe_rgb_pixels_become_more_saturated_srgb_ones() {
        // Adobe RGB's green primary lies outside sRGB: its mid green maps to a purer sRGB green.
        let mut plan = Plan::for_profile(Some(&icc(&ColorProfile::new_adobe_rgb())), false, false);
        assert!(plan.colour.converted);
        let mut pixels = vec![60, 160, 60, 128, 128, 128];
        plan.apply(&mut pixels, 2, false);
        assert!(pixels[1] >= 160 && pixels[0] < 60, "{pixels:?}");
        assert!(
            pixels[3..].iter().all(|&v| v.abs_diff(128) <= 1),
            "grey stays grey: {pixels:?}"
        );
        assert!(plan.warning.is_none());
    }

    #[test]
    fn a_corrupt_profile_or_one_for_other_pixels_is_a_warning_not_a_failure() {
        let corrupt = Plan::for_profile(Some(b"not an ICC profile at all"), false, false);
        assert!(corrupt.warning.unwrap().contains("could not be read"));
        let grey = icc(&ColorProfile::new_gray_with_gamma(2.2));
        let lying = Plan::for_profile(Some(&grey), false, false);
        assert!(lying.warning.unwrap().contains("pixels are RGB"));
        let honest = Plan::for_profile(Some(&grey), true, false);
        assert!(honest.warning.is_none() && !honest.colour.converted);
    }
}
