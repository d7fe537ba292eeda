//! Variants already made, kept by the bytes they were made from and the settings that made them,
//! so the same upload again reuses them instead of being decoded and encoded anew.
//!
//! `made/{sha256}/{fingerprint}/` holds a hard link to each variant file of the first job that
//! made them, and `result` (that job's description of them, opaque here). A later job of the same
//! bytes and settings gets hard links of its own in `variants/{job id}/`: no byte is copied, and
//! every upload's files stay its own, so deleting one upload removes only its links and never
//! another's variants. The entry goes with the original, once nothing references those bytes
//! (`cleanup.rs`).

use std::io;
use std::path::PathBuf;

use super::disk::{Storage, sync_dir, with_path};
use super::key::StorageKey;
use super::removal::{Stored, modified, read_dir_or_empty};
use crate::queue::JobId;

/// The description's file in an entry.
const RESULT: &str = "result";

impl Storage {
    fn made_dir(&self, sha256: &str, fingerprint: &str) -> Option<PathBuf> {
        let fingerprint_ok =
            !fingerprint.is_empty() && fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
        (StorageKey::is_sha256(sha256) && fingerprint_ok)
            .then(|| self.root().join("made").join(sha256).join(fingerprint))
    }

    /// Links the variants `names` made before from the bytes `sha256` with settings
    /// `fingerprint` into `job`'s directory, and returns their description; `None` (and nothing
    /// linked) when no such entry is complete.
    pub fn reuse_made(
        &self,
        sha256: &str,
        fingerprint: &str,
        job: &JobId,
        names: &[&str],
    ) -> io::Result<Option<Vec<u8>>> {
        let Some(entry) = self.made_dir(sha256, fingerprint) else {
            return Ok(None);
        };
        let description = match std::fs::read(entry.join(RESULT)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(with_path(e, "could not read", &entry)),
        };
        let dir = self.variants_dir(job);
        std::fs::create_dir_all(&dir).map_err(|e| with_path(e, "could not create", &dir))?;
        for name in names {
            let file = format!("{name}.webp");
            let target = dir.join(&file);
            // A retried job may have written some already: the made ones replace them.
            match std::fs::remove_file(&target) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(with_path(e, "could not replace", &target));
                }
                _ => {}
            }
            match std::fs::hard_link(entry.join(&file), &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Removed meanwhile: make them afresh instead.
                    self.remove_outputs(job)?;
                    return Ok(None);
                }
                Err(e) => return Err(with_path(e, "could not link", &target)),
            }
        }
        sync_dir(&dir)?;
        Ok(Some(description))
    }

    /// Keeps `job`'s variants `names` (just written) and their `description` for later jobs of
    /// the bytes `sha256` with settings `fingerprint`. The first job to finish keeps its own; an
    /// existing entry is left as it is.
    pub fn keep_made(
        &self,
        sha256: &str,
        fingerprint: &str,
        job: &JobId,
        names: &[&str],
        description: &[u8],
    ) -> io::Result<()> {
        let Some(entry) = self.made_dir(sha256, fingerprint) else {
            return Ok(());
        };
        if entry.is_dir() {
            return Ok(());
        }
        let parent = entry.parent().unwrap_or(&entry).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| with_path(e, "could not create", &parent))?;
        // Built aside and renamed into place whole, so a reader finds a complete entry or none.
        let temp = tempfile::Builder::new()
            .prefix(".making.")
            .tempdir_in(&parent)
            .map_err(|e| with_path(e, "could not create a temporary directory in", &parent))?;
        let source = self.variants_dir(job);
        for name in names {
            let file = format!("{name}.webp");
            std::fs::hard_link(source.join(&file), temp.path().join(&file))
                .map_err(|e| with_path(e, "could not link", &source.join(&file)))?;
        }
        // On disk before the entry is in place: a crash must not leave an entry that is there
        // but empty, which would never be replaced.
        let result = temp.path().join(RESULT);
        std::fs::write(&result, description)
            .and_then(|()| std::fs::File::open(&result)?.sync_all())
            .map_err(|e| with_path(e, "could not write", &result))?;
        sync_dir(temp.path())?;
        let temp = temp.keep();
        match std::fs::rename(&temp, &entry) {
            Ok(()) => sync_dir(&parent),
            // Another job of the same bytes kept its own first.
            Err(_) if entry.is_dir() => {
                let _ = std::fs::remove_dir_all(&temp);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&temp);
                Err(with_path(e, "could not rename into", &entry))
            }
        }
    }

    /// Removes every entry made from the bytes `sha256`.
    pub fn remove_made(&self, sha256: &str) -> io::Result<()> {
        if !StorageKey::is_sha256(sha256) {
            return Ok(());
        }
        let dir = self.root().join("made").join(sha256);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(with_path(e, "could not remove", &dir))
            }
            _ => Ok(()),
        }
    }

    /// The SHA-256 of every set of bytes with variants kept, with the directory's time.
    pub fn stored_made(&self) -> io::Result<Vec<Stored<String>>> {
        let mut found = Vec::new();
        for dir in read_dir_or_empty(&self.root().join("made"))? {
            if let Some(sha) = dir
                .file_name()
                .to_str()
                .filter(|s| StorageKey::is_sha256(s))
            {
                found.push(Stored {
                    what: sha.to_owned(),
                    modified: modified(&dir.path()),
                });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ab12000000000000000000000000000000000000000000000000000000000000";

    fn storage() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        (dir, storage)
    }

    #[test]
    fn kept_variants_are_linked_into_a_later_job_and_outlive_the_first() {
        // Proves the reuse: the later job gets the same bytes under its own names, and deleting
        // the first job's outputs leaves the later job's files whole.
        let (_dir, storage) = storage();
        let (first, later) = (JobId::new(), JobId::new());
        let mut writer = storage.variant_writer(&first);
        writer.write("thumb", b"small webp").unwrap();
        writer.write("large", b"large webp").unwrap();
        let names = ["thumb", "large"];
        storage
            .keep_made(SHA, "f00d", &first, &names, b"{\"described\":1}")
            .unwrap();
        assert_eq!(
            storage.reuse_made(SHA, "f00d", &later, &names).unwrap(),
            Some(b"{\"described\":1}".to_vec())
        );
        storage.remove_outputs(&first).unwrap();
        let path = storage.variants_dir(&later).join("large.webp");
        assert_eq!(std::fs::read(path).unwrap(), b"large webp");
        assert_eq!(storage.stored_made().unwrap()[0].what, SHA);
        storage.remove_made(SHA).unwrap();
        assert!(storage.stored_made().unwrap().is_empty());
        assert_eq!(
            std::fs::read(storage.variants_dir(&later).join("thumb.webp")).unwrap(),
            b"small webp",
            "removing the entry leaves a job's own links"
        );
    }

    #[test]
    fn other_settings_other_bytes_or_a_hostile_name_find_nothing() {
        // Proves the entry is found only by the same bytes and settings, and that nothing but a
        // SHA-256 and a hex fingerprint becomes part of a path.
        let (_dir, storage) = storage();
        let first = JobId::new();
        storage.variant_writer(&first).write("thumb", b"x").unwrap();
        storage
            .keep_made(SHA, "f00d", &first, &["thumb"], b"d")
            .unwrap();
        let later = JobId::new();
        let other_sha = SHA.replace("ab12", "cd34");
        assert_eq!(
            storage.reuse_made(SHA, "beef", &later, &["thumb"]).unwrap(),
            None
        );
        assert_eq!(
            storage
                .reuse_made(&other_sha, "f00d", &later, &["thumb"])
                .unwrap(),
            None
        );
        assert_eq!(
            storage.reuse_made(SHA, "../x", &later, &["thumb"]).unwrap(),
            None
        );
        assert_eq!(
            storage
                .reuse_made("../..", "f00d", &later, &["thumb"])
                .unwrap(),
            None
        );
        // A variant the entry does not have (a setting added since): nothing is linked.
        assert_eq!(
            storage
                .reuse_made(SHA, "f00d", &later, &["thumb", "extra"])
                .unwrap(),
            None
        );
        assert!(!storage.variants_dir(&later).exists());
    }

    #[test]
    fn a_second_job_keeping_the_same_entry_leaves_the_first() {
        // Proves two jobs of the same bytes finishing together cannot corrupt the entry.
        let (_dir, storage) = storage();
        let (a, b) = (JobId::new(), JobId::new());
        storage
            .variant_writer(&a)
            .write("thumb", b"from a")
            .unwrap();
        storage
            .variant_writer(&b)
            .write("thumb", b"from b")
            .unwrap();
        storage
            .keep_made(SHA, "f00d", &a, &["thumb"], b"a")
            .unwrap();
        storage
            .keep_made(SHA, "f00d", &b, &["thumb"], b"b")
            .unwrap();
        let later = JobId::new();
        assert_eq!(
            storage.reuse_made(SHA, "f00d", &later, &["thumb"]).unwrap(),
            Some(b"a".to_vec())
        );
    }
}
