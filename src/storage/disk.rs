//! `Storage` on the local disk: the directory layout under `storage.dir`, reading originals,
//! serving media, and clearing what a crashed process left half written.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::key::StorageKey;
use super::staging::StagedUpload;
use super::variants::VariantWriter;
use crate::queue::JobId;
use crate::validate::Checks;

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Originals, variants and the embedded Redis's data live under this directory.
    pub dir: PathBuf,
    /// Uploads are refused (507) while less than this is free on the directory's file system, so
    /// the variants of what was accepted, Redis's AOF and the logs still have room.
    pub min_free_bytes: u64,
    /// How often each process expires finished records whose retention is over and removes the
    /// files Redis no longer references (deletions sweep at once, too).
    pub sweep_interval_ms: u64,
    /// How often one instance looks for files no record names (orphans), starting at start-up.
    pub orphan_sweep_interval_secs: u64,
    /// A file younger than this is never taken for an orphan: it may belong to an upload under
    /// way.
    pub orphan_min_age_secs: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("uploads"),
            min_free_bytes: 256 * 1024 * 1024,
            sweep_interval_ms: 1_000,
            orphan_sweep_interval_secs: 3_600,
            orphan_min_age_secs: 3_600,
        }
    }
}

impl StorageSettings {
    pub fn check(&self, checks: &mut Checks) {
        checks.require(!self.dir.as_os_str().is_empty(), "storage.dir", || {
            "storage.dir must name a directory".into()
        });
        checks.at_least("storage.sweep_interval_ms", self.sweep_interval_ms, 10);
        checks.at_least(
            "storage.orphan_sweep_interval_secs",
            self.orphan_sweep_interval_secs,
            1,
        );
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms)
    }

    pub fn orphan_sweep_interval(&self) -> Duration {
        Duration::from_secs(self.orphan_sweep_interval_secs)
    }

    pub fn orphan_min_age(&self) -> Duration {
        Duration::from_secs(self.orphan_min_age_secs)
    }
}

/// A temp upload older than this belongs to no live request: requests end long before.
const STALE_UPLOAD: Duration = Duration::from_secs(86_400);

/// The store, cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    /// Creates the directory layout under `root`, and removes uploads a crashed process left half
    /// written (older than a day, so another process's upload in progress is never touched).
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in ["originals", "variants", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let storage = Self {
            root: root.to_path_buf(),
        };
        storage.remove_stale_uploads(STALE_UPLOAD);
        Ok(storage)
    }

    fn remove_stale_uploads(&self, older_than: Duration) {
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

    /// Starts receiving an upload into a fresh temp file on the same file system as its final
    /// place. The file is removed again unless the upload is committed.
    pub async fn stage(&self) -> io::Result<StagedUpload> {
        let temp = self
            .root
            .join("tmp")
            .join(format!("{}.part", uuid::Uuid::now_v7().simple()));
        StagedUpload::create(self.clone(), temp).await
    }

    /// The original at `key`, for reading (blocking: call it off the async executor).
    pub fn open_original(&self, key: &StorageKey) -> io::Result<File> {
        let path = self.path(key);
        File::open(&path).map_err(|e| with_path(e, "could not open", &path))
    }

    /// Where a job's variants go; nothing is created until the first one is written.
    pub fn variant_writer(&self, job: &JobId) -> VariantWriter {
        VariantWriter::new(self.variants_dir(job), *job)
    }

    /// Bytes free for pixdrop on the storage's file system.
    pub fn free_bytes(&self) -> io::Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.root.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `path` is a valid NUL-terminated string and `stats` points to writable memory
        // of the right type; statvfs fills it entirely when it returns 0.
        let stats = unsafe {
            if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            stats.assume_init()
        };
        // The fields' types differ between platforms (f_frsize is signed on Linux x86-64).
        #[allow(clippy::unnecessary_cast)]
        let free = (stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64);
        Ok(free)
    }

    /// The local file behind a key, for serving it (with `sendfile`, ETag and Range).
    pub fn media_file(&self, key: &StorageKey) -> PathBuf {
        self.path(key)
    }

    pub(super) fn path(&self, key: &StorageKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Where a job's variants are.
    pub(super) fn variants_dir(&self, job: &JobId) -> PathBuf {
        self.root.join("variants").join(job.to_string())
    }
}

/// Records a rename in its directory: without this a crash can forget the new name.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(e, "could not sync", dir))
}

/// The error with the path it concerns, as the message's end: paths stay in logs and server-side
/// errors, never in what a client is shown.
pub(super) fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_storage_removes_only_stale_partial_uploads() {
        // A crashed upload's temp file is cleaned up; a fresh one (another process's) is left alone.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let stale = storage.stage().await.unwrap();
        let fresh = storage.stage().await.unwrap();
        let (stale, fresh) = (stale.leak_for_test(), fresh.leak_for_test());
        let long_ago = std::time::SystemTime::now() - 2 * STALE_UPLOAD;
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        Storage::open(dir.path()).unwrap();
        assert!(!stale.exists() && fresh.exists());
    }

    #[test]
    fn a_missing_original_is_an_io_error_that_names_its_path() {
        // Proves trouble reading our own storage reads as such in the log.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let key = StorageKey::original(&"ab".repeat(32), crate::pipeline::ImageFormat::Png);
        let err = storage.open_original(&key).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with("could not open "), "{err}");
    }

    #[test]
    fn free_space_is_read_from_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        assert!(storage.free_bytes().unwrap() > 0);
    }
}
