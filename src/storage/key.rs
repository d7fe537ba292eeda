//! `StorageKey`: the name of one stored object, in the only two shapes storage generates.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pipeline::ImageFormat;
use crate::queue::JobId;

/// `originals/{first two hex digits}/{sha256}.{ext}` or `variants/{job id}/{name}.webp`. Private:
/// made only by the constructors below or by [`StorageKey::parse`], which accepts those shapes alone,
/// so a key read from a request or a job record can never point anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StorageKey(String);

impl StorageKey {
    /// An original, addressed by its content. `sha256` is 64 lowercase hex digits.
    pub fn original(sha256: &str, format: ImageFormat) -> Self {
        Self(format!(
            "originals/{}/{sha256}.{}",
            &sha256[..2],
            format.extension()
        ))
    }

    /// Whether `s` is a SHA-256 as originals are named by: 64 lowercase hex digits.
    pub fn is_sha256(s: &str) -> bool {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// A variant of a job. `name` is a validated variant name (a slug).
    pub fn variant(job: &JobId, name: &str) -> Self {
        Self(format!("variants/{job}/{name}.webp"))
    }

    /// Accepts only the shapes above; `None` for anything else (traversal, odd names).
    pub fn parse(key: &str) -> Option<Self> {
        let parts: Vec<&str> = key.split('/').collect();
        let valid = match parts.as_slice() {
            ["originals", prefix, file] => {
                let (hash, ext) = file.split_once('.')?;
                prefix.len() == 2
                    && Self::is_sha256(hash)
                    && hash.starts_with(prefix)
                    && ImageFormat::ALL.iter().any(|f| f.extension() == ext)
            }
            ["variants", id, file] => {
                let name = file.strip_suffix(".webp")?;
                id.parse::<JobId>().is_ok()
                    && !name.is_empty()
                    && name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            }
            _ => false,
        };
        valid.then(|| Self(key.to_owned()))
    }

    /// Whether this names an original (rather than a variant).
    pub fn is_original(&self) -> bool {
        self.0.starts_with("originals/")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StorageKey {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| format!("not a storage key: {raw:?}"))
    }
}

impl From<StorageKey> for String {
    fn from(key: StorageKey) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_in_the_shapes_the_storage_generates() {
        // Traversal, absolute paths, unknown folders and odd names are all refused.
        let hash = "ab".to_string() + &"0".repeat(62);
        let id = JobId::new();
        let original = StorageKey::original(&hash, ImageFormat::Jpeg);
        assert_eq!(original.as_str(), format!("originals/ab/{hash}.jpg"));
        assert_eq!(StorageKey::parse(original.as_str()), Some(original));
        let variant = StorageKey::variant(&id, "thumb");
        assert_eq!(StorageKey::parse(variant.as_str()), Some(variant));
        for bad in [
            "../etc/passwd".to_string(),
            format!("originals/ab/{hash}.exe"),
            format!("originals/cd/{hash}.jpg"),
            format!("originals/ab/../{hash}.jpg"),
            format!("variants/{id}/../../x.webp"),
            format!("variants/{id}/Thumb.webp"),
            "variants/not-an-id/thumb.webp".to_string(),
            format!("tmp/{hash}.part"),
            String::new(),
        ] {
            assert!(StorageKey::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_accepted_format_has_an_original_key_that_parses_back() {
        // Proves the extension list used by parsing is the one keys are made with.
        let hash = "0f".repeat(32);
        for format in ImageFormat::ALL {
            let key = StorageKey::original(&hash, format);
            assert_eq!(StorageKey::parse(key.as_str()), Some(key));
        }
    }
}
