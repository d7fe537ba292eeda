//! Removing stored files, and listing what is stored for the orphan sweep.
//!
//! An original is shared by every upload of the same bytes, so removing one is a two-step dance
//! with the reference count kept in Redis: [`Storage::set_aside_original`] moves it out of its
//! place (to `tmp/{name}.tomb`, on the same file system), the caller asks Redis whether anything
//! referenced it meanwhile, then [`SetAside::remove`]s it or [`SetAside::put_back`]s it. An
//! upload of the same bytes that lands while it is set aside finds no file in the way and stores
//! its own copy; one that pinned the content first makes Redis answer "keep". The tomb's name is
//! fixed by the original's, so a sweep that died holding one finds it again
//! ([`Storage::restore_original`] puts it back when the content turned out to be referenced), and
//! its time is when it was set aside, so the orphan sweep tells a fresh one from one left behind.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::disk::{Storage, sync_dir, with_path};
use super::key::StorageKey;
use crate::pipeline::ImageFormat;
use crate::queue::JobId;

/// An original moved out of its place, to be removed or put back.
#[derive(Debug)]
pub struct SetAside {
    home: PathBuf,
    tomb: PathBuf,
}

impl SetAside {
    /// Removes the file for good.
    pub fn remove(self) -> io::Result<()> {
        remove_file_if_present(&self.tomb)
    }

    /// Puts the file back where it was (an upload of the same bytes may have put its own there
    /// meanwhile: the same bytes, so either copy serves), and records that in the directory. A
    /// tomb that vanished is an error unless a copy is in place.
    pub fn put_back(self) -> io::Result<()> {
        put_back(&self.tomb, &self.home)
    }
}

/// A stored thing the orphan sweep looks at: what it is, and when it was last written.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub what: T,
    pub modified: SystemTime,
}

/// The suffix of a set-aside original in `tmp/`.
const TOMB: &str = ".tomb";

impl Storage {
    /// Moves the original with this SHA-256 (whatever its format) out of its place; `None` when
    /// none is stored. A file already set aside by an earlier sweep is picked up again.
    pub fn set_aside_original(&self, sha256: &str) -> io::Result<Option<SetAside>> {
        if !StorageKey::is_sha256(sha256) {
            return Ok(None);
        }
        for format in ImageFormat::ALL {
            let home = self.path(&StorageKey::original(sha256, format));
            let tomb = self.tomb_of(sha256, format);
            match std::fs::rename(&home, &tomb) {
                Ok(()) => {
                    // A rename keeps the file's time; the tomb's must say when it was made.
                    std::fs::File::options()
                        .write(true)
                        .open(&tomb)
                        .and_then(|f| f.set_modified(SystemTime::now()))
                        .map_err(|e| with_path(e, "could not date", &tomb))?;
                    return Ok(Some(SetAside { home, tomb }));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if tomb.is_file() {
                        return Ok(Some(SetAside { home, tomb }));
                    }
                }
                Err(e) => return Err(with_path(e, "could not set aside", &home)),
            }
        }
        Ok(None)
    }

    /// Puts back an original a sweep set aside and did not finish with, if there is one; `true`
    /// when it did.
    pub fn restore_original(&self, sha256: &str) -> io::Result<bool> {
        if !StorageKey::is_sha256(sha256) {
            return Ok(false);
        }
        for format in ImageFormat::ALL {
            let tomb = self.tomb_of(sha256, format);
            if tomb.is_file() {
                put_back(&tomb, &self.path(&StorageKey::original(sha256, format)))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether an original with this SHA-256 is stored, in any format.
    pub fn has_original(&self, sha256: &str) -> bool {
        StorageKey::is_sha256(sha256)
            && ImageFormat::ALL
                .iter()
                .any(|f| self.path(&StorageKey::original(sha256, *f)).is_file())
    }

    /// Removes everything a job produced; `false` when there was nothing.
    pub fn remove_outputs(&self, job: &JobId) -> io::Result<bool> {
        let dir = self.variants_dir(job);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(with_path(e, "could not remove", &dir)),
        }
    }

    /// The SHA-256 of every stored original, with its file's time.
    pub fn stored_originals(&self) -> io::Result<Vec<Stored<String>>> {
        let mut found = Vec::new();
        for prefix in read_dir_or_empty(&self.root().join("originals"))? {
            for file in read_dir_or_empty(&prefix.path())? {
                let name = file.file_name();
                let Some(sha) = name
                    .to_str()
                    .and_then(|n| n.split_once('.'))
                    .map(|(s, _)| s)
                else {
                    continue;
                };
                if StorageKey::is_sha256(sha) {
                    found.push(Stored {
                        what: sha.to_owned(),
                        modified: modified(&file.path()),
                    });
                }
            }
        }
        Ok(found)
    }

    /// Every job with a directory of outputs, with the directory's time.
    pub fn stored_outputs(&self) -> io::Result<Vec<Stored<JobId>>> {
        let mut found = Vec::new();
        for dir in read_dir_or_empty(&self.root().join("variants"))? {
            if let Some(id) = dir.file_name().to_str().and_then(|n| n.parse().ok()) {
                found.push(Stored {
                    what: id,
                    modified: modified(&dir.path()),
                });
            }
        }
        Ok(found)
    }

    /// The SHA-256 of every original set aside, with when it was set aside.
    pub fn stored_tombs(&self) -> io::Result<Vec<Stored<String>>> {
        let mut found = Vec::new();
        for file in read_dir_or_empty(&self.root().join("tmp"))? {
            let name = file.file_name();
            let sha = name
                .to_str()
                .and_then(|n| n.strip_suffix(TOMB))
                .and_then(|n| n.split_once('.'))
                .map(|(sha, _)| sha);
            if let Some(sha) = sha.filter(|sha| StorageKey::is_sha256(sha)) {
                found.push(Stored {
                    what: sha.to_owned(),
                    modified: modified(&file.path()),
                });
            }
        }
        Ok(found)
    }

    fn tomb_of(&self, sha256: &str, format: ImageFormat) -> PathBuf {
        self.root()
            .join("tmp")
            .join(format!("{sha256}.{}{TOMB}", format.extension()))
    }
}

fn put_back(tomb: &Path, home: &Path) -> io::Result<()> {
    match std::fs::rename(tomb, home) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return if home.is_file() {
                Ok(())
            } else {
                Err(with_path(
                    e,
                    "lost a set-aside original: nothing to put back at",
                    home,
                ))
            };
        }
        other => other.map_err(|e| with_path(e, "could not put back", home))?,
    }
    sync_dir(home.parent().unwrap_or(Path::new(".")))
}

fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(with_path(e, "could not remove", path))
        }
        _ => Ok(()),
    }
}

pub(super) fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(with_path(e, "could not list", dir)),
    }
}

/// A file's time, or the epoch when it cannot be read (it is then as old as can be; the sweep
/// still asks Redis before it removes anything).
pub(super) fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stored(storage: &Storage, bytes: &[u8]) -> String {
        let mut staged = storage.stage().await.unwrap();
        staged.write(bytes).await.unwrap();
        staged.commit(ImageFormat::Png).await.unwrap().sha256
    }

    #[tokio::test]
    async fn an_original_set_aside_is_removed_or_put_back() {
        // Proves both endings, and that a sweep that died holding a tomb finds it again.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let sha = stored(&storage, b"photo").await;
        let aside = storage.set_aside_original(&sha).unwrap().unwrap();
        assert!(!storage.has_original(&sha));
        aside.put_back().unwrap();
        assert!(storage.has_original(&sha));

        let aside = storage.set_aside_original(&sha).unwrap().unwrap();
        drop(aside);
        let again = storage
            .set_aside_original(&sha)
            .unwrap()
            .expect("the tomb is found");
        again.remove().unwrap();
        assert!(!storage.has_original(&sha));
        assert!(storage.set_aside_original(&sha).unwrap().is_none());
        assert!(
            storage
                .set_aside_original("../../etc/passwd")
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn outputs_and_originals_are_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let sha = stored(&storage, b"photo").await;
        let job = JobId::new();
        storage
            .variant_writer(&job)
            .write("thumb", b"webp")
            .unwrap();
        let originals: Vec<String> = storage
            .stored_originals()
            .unwrap()
            .into_iter()
            .map(|s| s.what)
            .collect();
        assert_eq!(originals, [sha]);
        let outputs: Vec<JobId> = storage
            .stored_outputs()
            .unwrap()
            .into_iter()
            .map(|s| s.what)
            .collect();
        assert_eq!(outputs, [job]);
        assert!(storage.remove_outputs(&job).unwrap());
        assert!(!storage.remove_outputs(&job).unwrap());
        assert!(storage.stored_outputs().unwrap().is_empty());
    }
}
