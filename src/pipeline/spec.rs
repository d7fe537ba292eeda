//! What a variant should look like: a name, a bounding box, how to fit the photo into it, and a
//! WebP quality and effort. Validated once, at construction, because the name becomes part of a
//! file name.

use serde::{Deserialize, Serialize};

use super::libwebp::MAX_EFFORT;

/// libwebp's method when a variant names none. Measured on a 4.9 MP photo (the README's table),
/// effort 2 encodes the 1280 px variant in 46% of effort 4's time (libwebp's and Sharp's default)
/// for 5% more bytes at the same quality setting and PSNR within 0.4 dB; effort 3 costs as much
/// time as 4, and 0 and 1 grow the files by 20 to 60%.
pub const DEFAULT_EFFORT: u8 = 2;

/// The largest side libwebp can encode.
const WEBP_MAX_SIDE: u32 = 16_383;
const NAME_MAX_LEN: usize = 32;

/// How a photo is fitted into a variant's box. Neither ever enlarges a photo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Scale down until the whole photo fits inside the box; the aspect ratio is kept, so one
    /// side may be shorter than the box.
    #[default]
    Inside,
    /// Crop the middle of the photo to the box's aspect ratio, then scale down to the box: the
    /// output fills the box exactly, or has the box's shape when the photo is smaller.
    Cover,
}

/// One output variant. Private fields: the only ways in are [`VariantSpec::new`], the defaults and
/// deserialisation, which all validate, so an unsafe file name cannot reach the file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSpec")]
pub struct VariantSpec {
    name: String,
    max_width: u32,
    max_height: u32,
    fit: Fit,
    quality: f32,
    effort: u8,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("variant name {name:?} must be 1 to {NAME_MAX_LEN} characters of a-z, 0-9, '_' or '-'")]
    BadName { name: String },
    #[error("variant box {width}x{height} must be between 1 and {WEBP_MAX_SIDE} on each side")]
    BadSize { width: u32, height: u32 },
    #[error("variant quality {quality} must be between 0 and 100")]
    BadQuality { quality: f32 },
    #[error("variant effort {effort} must be between 0 and {MAX_EFFORT}")]
    BadEffort { effort: u8 },
}

impl VariantSpec {
    pub fn new(
        name: impl Into<String>,
        max_width: u32,
        max_height: u32,
        fit: Fit,
        quality: f32,
    ) -> Result<Self, SpecError> {
        let name = name.into();
        let name_ok = (1..=NAME_MAX_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if !name_ok {
            return Err(SpecError::BadName { name });
        }
        let side_ok = |side| (1..=WEBP_MAX_SIDE).contains(&side);
        if !side_ok(max_width) || !side_ok(max_height) {
            return Err(SpecError::BadSize {
                width: max_width,
                height: max_height,
            });
        }
        // `contains` is false for NaN, which is what we want.
        if !(0.0..=100.0).contains(&quality) {
            return Err(SpecError::BadQuality { quality });
        }
        Ok(Self {
            name,
            max_width,
            max_height,
            fit,
            quality,
            effort: DEFAULT_EFFORT,
        })
    }

    /// This spec encoded with libwebp's `effort` (method), 0 (fastest) to 6 (smallest).
    pub fn with_effort(mut self, effort: u8) -> Result<Self, SpecError> {
        if effort > MAX_EFFORT {
            return Err(SpecError::BadEffort { effort });
        }
        self.effort = effort;
        Ok(self)
    }

    /// 320x320, inside, quality 80: for grids and lists.
    pub fn thumb() -> Self {
        Self::known_good("thumb", 320)
    }

    /// 1280x1280, inside, quality 80: for viewing one photo.
    pub fn large() -> Self {
        Self::known_good("large", 1280)
    }

    /// `thumb` and `large`, the variants pixdrop makes unless configured otherwise.
    pub fn defaults() -> Vec<Self> {
        vec![Self::thumb(), Self::large()]
    }

    /// The first name that two of `specs` share, if any: their files would overwrite each other.
    pub fn first_duplicate(specs: &[Self]) -> Option<&str> {
        specs.iter().enumerate().find_map(|(i, spec)| {
            specs[..i]
                .iter()
                .any(|earlier| earlier.name == spec.name)
                .then_some(spec.name.as_str())
        })
    }

    fn known_good(name: &str, side: u32) -> Self {
        Self {
            name: name.to_string(),
            max_width: side,
            max_height: side,
            fit: Fit::Inside,
            quality: 80.0,
            effort: DEFAULT_EFFORT,
        }
    }

    /// A safe slug; the output file is `{name}.webp`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_width(&self) -> u32 {
        self.max_width
    }

    pub fn max_height(&self) -> u32 {
        self.max_height
    }

    pub fn fit(&self) -> Fit {
        self.fit
    }

    /// Lossy WebP quality, 0 to 100.
    pub fn quality(&self) -> f32 {
        self.quality
    }

    /// libwebp's method, 0 (fastest) to 6 (smallest files).
    pub fn effort(&self) -> u8 {
        self.effort
    }
}

/// The unvalidated shape of a spec in configuration; `fit`, `quality` and `effort` may be left
/// out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    max_width: u32,
    max_height: u32,
    #[serde(default)]
    fit: Fit,
    #[serde(default = "default_quality")]
    quality: f32,
    #[serde(default = "default_effort")]
    effort: u8,
}

fn default_effort() -> u8 {
    DEFAULT_EFFORT
}

fn default_quality() -> f32 {
    80.0
}

impl TryFrom<RawSpec> for VariantSpec {
    type Error = SpecError;

    fn try_from(raw: RawSpec) -> Result<Self, SpecError> {
        Self::new(
            raw.name,
            raw.max_width,
            raw.max_height,
            raw.fit,
            raw.quality,
        )?
        .with_effort(raw.effort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation_rejects_names_that_could_escape_or_break_a_file_name() {
        // Proves a variant name can never be a path, hidden file, or odd character.
        let long = "a".repeat(33);
        for bad in [
            "../x",
            "",
            "a/b",
            "A",
            "thumb.webp",
            "a b",
            ".",
            "é",
            long.as_str(),
        ] {
            let err = VariantSpec::new(bad, 10, 10, Fit::Inside, 80.0).unwrap_err();
            assert!(matches!(err, SpecError::BadName { .. }), "{bad:?} accepted");
        }
    }

    #[test]
    fn spec_validation_accepts_slugs_up_to_thirty_two_characters() {
        // Proves ordinary names pass, at the length bound too.
        let at_limit = "z".repeat(32);
        for good in ["thumb", "x_1-2", "0", at_limit.as_str()] {
            assert!(
                VariantSpec::new(good, 10, 10, Fit::Cover, 80.0).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn spec_validation_rejects_empty_or_oversized_boxes_and_bad_qualities() {
        // Proves the numbers are checked: zero sides, sides WebP cannot hold, quality off 0..=100.
        let new = |w, h, q| VariantSpec::new("v", w, h, Fit::Inside, q);
        assert!(matches!(new(0, 10, 80.0), Err(SpecError::BadSize { .. })));
        assert!(matches!(new(10, 0, 80.0), Err(SpecError::BadSize { .. })));
        assert!(matches!(
            new(16_384, 10, 80.0),
            Err(SpecError::BadSize { .. })
        ));
        assert!(new(16_383, 1, 0.0).is_ok() && new(1, 1, 100.0).is_ok());
        for q in [-0.1, 100.5, f32::NAN, f32::INFINITY] {
            assert!(matches!(new(10, 10, q), Err(SpecError::BadQuality { .. })));
        }
    }

    #[test]
    fn the_defaults_are_a_320_thumb_and_a_1280_large_inside_at_quality_80() {
        // Proves the documented defaults, and that they would pass their own validation.
        let [thumb, large] = <[VariantSpec; 2]>::try_from(VariantSpec::defaults()).unwrap();
        assert_eq!(
            thumb,
            VariantSpec::new("thumb", 320, 320, Fit::Inside, 80.0).unwrap()
        );
        assert_eq!(
            large,
            VariantSpec::new("large", 1280, 1280, Fit::Inside, 80.0).unwrap()
        );
    }

    #[test]
    fn deserialising_a_spec_validates_it_and_fills_in_fit_and_quality() {
        // Proves configuration goes through the same checks, with lowercase fit names.
        let spec: VariantSpec =
            serde_json::from_str(r#"{"name":"sq","max_width":200,"max_height":200,"fit":"cover"}"#)
                .unwrap();
        assert_eq!((spec.fit(), spec.quality()), (Fit::Cover, 80.0));
        assert_eq!(spec.effort(), DEFAULT_EFFORT);
        let fast: VariantSpec =
            serde_json::from_str(r#"{"name":"f","max_width":9,"max_height":9,"effort":0}"#)
                .unwrap();
        assert_eq!(fast.effort(), 0);
        let err = serde_json::from_str::<VariantSpec>(
            r#"{"name":"f","max_width":9,"max_height":9,"effort":7}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("effort 7"), "{err}");
        let bad = r#"{"name":"../etc","max_width":200,"max_height":200}"#;
        let err = serde_json::from_str::<VariantSpec>(bad).unwrap_err();
        assert!(
            err.to_string().contains("must be 1 to 32 characters"),
            "{err}"
        );
    }
}
