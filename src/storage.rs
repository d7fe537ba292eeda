//! Where files live under `storage.dir`, and how they get there safely. Every path is generated:
//! originals are addressed by their SHA-256 (`originals/ab/abcd….jpg`), variants by job id and
//! variant name (`variants/{job id}/{name}.webp`), so a URL names one content forever and nothing a
//! client sends ever becomes part of a path. Uploads are written under `tmp/` and renamed in place.

use std::path::{Path, PathBuf};

use crate::pipeline::ImageFormat;
use crate::queue::JobId;

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    /// Creates the directory layout under `root`, and removes uploads a crashed process left half
    /// written (older than a day, so another process's upload in progress is never touched).
    pub fn open(root: &Path) -> std::io::Result<Self> {
        for dir in ["originals", "variants", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let storage = Self {
            root: root.to_path_buf(),
        };
        storage.remove_stale_uploads(std::time::Duration::from_secs(86_400));
        Ok(storage)
    }

    fn remove_stale_uploads(&self, older_than: std::time::Duration) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > older_than));
            if stale && entry.path().extension().is_some_and(|e| e == "part") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh temp path for an upload in progress (same filesystem as its final place).
    pub fn temp_upload(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}.part", uuid::Uuid::now_v7().simple()))
    }

    /// The original's path relative to the root, from its hash and sniffed format.
    pub fn original_key(sha256: &str, format: ImageFormat) -> String {
        format!("originals/{}/{sha256}.{}", &sha256[..2], extension(format))
    }

    /// The directory holding a job's variants.
    pub fn variants_dir(&self, id: &JobId) -> PathBuf {
        self.root.join("variants").join(id.to_string())
    }

    pub fn variant_key(id: &JobId, name: &str) -> String {
        format!("variants/{id}/{name}.webp")
    }

    /// The absolute path of a key this module generated.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Turns a `/media/...` tail into a path, accepting only the two shapes this module generates;
    /// anything else (traversal, odd names) is `None`.
    pub fn resolve_media(&self, tail: &str) -> Option<PathBuf> {
        let parts: Vec<&str> = tail.split('/').collect();
        let valid = match parts.as_slice() {
            ["originals", prefix, file] => {
                let (hash, ext) = file.split_once('.')?;
                prefix.len() == 2
                    && hash.len() == 64
                    && hash.starts_with(prefix)
                    && hash
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    && EXTENSIONS.contains(&ext)
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
        valid.then(|| self.root.join(tail))
    }
}

const EXTENSIONS: [&str; 6] = ["jpg", "png", "gif", "webp", "bmp", "tiff"];

fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> Storage {
        Storage {
            root: PathBuf::from("/srv/px"),
        }
    }

    #[test]
    fn opening_storage_removes_only_stale_partial_uploads() {
        // A crashed upload's temp file is cleaned up; a fresh one (another process's) is left alone.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let stale = storage.temp_upload();
        let fresh = storage.temp_upload();
        std::fs::write(&stale, b"old").unwrap();
        std::fs::write(&fresh, b"new").unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        Storage::open(dir.path()).unwrap();
        assert!(!stale.exists() && fresh.exists());
    }

    #[test]
    fn media_paths_resolve_only_to_shapes_the_storage_generates() {
        // Traversal, absolute paths, unknown folders and odd names are all refused.
        let s = storage();
        let hash = "ab".to_string() + &"0".repeat(62);
        let id = JobId::new();
        assert!(
            s.resolve_media(&format!("originals/ab/{hash}.jpg"))
                .is_some()
        );
        assert!(
            s.resolve_media(&format!("variants/{id}/thumb.webp"))
                .is_some()
        );
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
            assert!(s.resolve_media(&bad).is_none(), "{bad}");
        }
    }
}
