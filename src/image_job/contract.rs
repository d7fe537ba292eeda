//! The payload and the result of an image job, as stored in the job's record.

use serde::{Deserialize, Serialize};

use crate::pipeline::ImageFormat;
use crate::storage::StorageKey;

/// A job's payload, written by the upload handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageJob {
    /// The stored original (generated, never from the client).
    pub original: StorageKey,
    /// The client's filename, kept only as data.
    pub filename: Option<String>,
    pub bytes: u64,
    pub sha256: String,
    /// As sniffed from the first bytes.
    pub format: ImageFormat,
}

/// What a completed job produced. Fields added since results were first stored default when
/// absent, so older results still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageResult {
    pub original: DecodedOriginal,
    /// In the order of the configured variants.
    pub variants: Vec<StoredVariant>,
    /// What was worked around, in words (a colour profile that could not be used).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The original as decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodedOriginal {
    pub format: ImageFormat,
    /// Displayed size, after the EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// The embedded colour profile's name, if it had one.
    #[serde(default)]
    pub colour_profile: Option<String>,
    /// Whether its colours were converted to sRGB for the variants.
    #[serde(default)]
    pub colour_converted: bool,
    /// Whether its EXIF holds a GPS position. The variants carry no EXIF; the original keeps its
    /// bytes, location included.
    #[serde(default)]
    pub has_location: bool,
}

/// One variant in storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVariant {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub key: StorageKey,
    /// Whether it is an animated WebP.
    #[serde(default)]
    pub animated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::JobId;

    #[test]
    fn a_result_round_trips_through_its_stored_json_with_keys_not_urls() {
        // Proves the stored shape: keys as plain strings, formats in lowercase.
        let job = JobId::new();
        let result = ImageResult {
            original: DecodedOriginal {
                format: ImageFormat::Png,
                width: 640,
                height: 480,
                colour_profile: Some("Adobe RGB (1998)".into()),
                colour_converted: true,
                has_location: true,
            },
            variants: vec![StoredVariant {
                name: "thumb".into(),
                width: 320,
                height: 240,
                bytes: 1234,
                key: StorageKey::variant(&job, "thumb"),
                animated: false,
            }],
            warnings: vec![],
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["original"]["format"], "png");
        assert_eq!(
            json["variants"][0]["key"],
            format!("variants/{job}/thumb.webp")
        );
        assert_eq!(serde_json::from_value::<ImageResult>(json).unwrap(), result);
    }

    #[test]
    fn a_result_stored_before_colour_and_location_were_recorded_still_reads() {
        let job = JobId::new();
        let stored = serde_json::json!({
            "original": {"format": "jpeg", "width": 4, "height": 3},
            "variants": [{"name": "thumb", "width": 4, "height": 3, "bytes": 10,
                          "key": format!("variants/{job}/thumb.webp")}]
        });
        let result: ImageResult = serde_json::from_value(stored).unwrap();
        assert_eq!(result.original.colour_profile, None);
        assert!(!result.original.has_location && result.warnings.is_empty());
    }

    #[test]
    fn a_payload_naming_a_key_outside_storage_does_not_parse() {
        // Proves a tampered record cannot make a worker read outside the storage directory.
        let payload = serde_json::json!({
            "original": "../../etc/passwd", "filename": null, "bytes": 1,
            "sha256": "00", "format": "jpeg"
        });
        assert!(serde_json::from_value::<ImageJob>(payload).is_err());
    }
}
