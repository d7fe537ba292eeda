//! An upload on its way in: written to a temp file while it is hashed and counted, then committed
//! under its content's key. Each stage removes what it wrote when dropped before the next, so a
//! refused or failed request leaves nothing behind.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::disk::{Storage, with_path};
use super::key::StorageKey;
use crate::pipeline::ImageFormat;

/// An upload being received. Dropping it removes the temp file.
pub struct StagedUpload {
    storage: Storage,
    temp: TempFile,
    file: tokio::fs::File,
    hasher: Sha256,
    bytes: u64,
}

impl StagedUpload {
    pub(super) async fn create(storage: Storage, path: PathBuf) -> io::Result<Self> {
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| with_path(e, "could not create", &path))?;
        Ok(Self {
            storage,
            temp: TempFile(Some(path)),
            file,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Appends the next chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Puts the upload under its content's key, `format` being what its bytes were sniffed as.
    /// The data is on disk, and the rename recorded in its directory, before this returns: the
    /// `202` that follows promises the file survives a crash.
    pub async fn commit(mut self, format: ImageFormat) -> io::Result<CommittedOriginal> {
        self.file.sync_all().await?;
        drop(self.file);
        let sha256 = hex::encode(self.hasher.finalize());
        let key = StorageKey::original(&sha256, format);
        let path = self.storage.path(&key);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| with_path(e, "could not create", &dir))?;
        // The same content may be stored already (the key is its hash): then it is not ours to
        // remove if this request is rolled back.
        let existed = tokio::fs::try_exists(&path).await.unwrap_or(false);
        let temp = self.temp.0.take().unwrap_or_default();
        tokio::fs::rename(&temp, &path)
            .await
            .map_err(|e| with_path(e, "could not move an upload to", &path))?;
        sync_dir(dir).await?;
        Ok(CommittedOriginal {
            key,
            sha256,
            bytes: self.bytes,
            created: (!existed).then_some(path),
        })
    }

    /// Keeps the temp file past the drop, returning its path (tests age it by hand).
    #[cfg(test)]
    pub(super) fn leak_for_test(mut self) -> PathBuf {
        self.temp.0.take().unwrap_or_default()
    }
}

/// A committed original. Dropping it before [`CommittedOriginal::keep`] removes the file again if
/// this upload created it, which is how a request that cannot enqueue its jobs is undone.
pub struct CommittedOriginal {
    pub key: StorageKey,
    pub sha256: String,
    pub bytes: u64,
    /// The file, when this upload created it (and so may remove it).
    created: Option<PathBuf>,
}

impl CommittedOriginal {
    /// Keeps the file past the drop; returns its key when this upload created it, for a caller
    /// that may still have to [`Storage::delete`] it once it knows the upload failed.
    pub fn keep(mut self) -> Option<StorageKey> {
        self.created.take().map(|_| self.key.clone())
    }
}

impl Drop for CommittedOriginal {
    fn drop(&mut self) {
        if let Some(path) = self.created.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A temp file removed on drop unless taken.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Records a rename in its directory: without this a crash can forget the new name.
async fn sync_dir(dir: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(root: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else {
                    found.push(entry.path());
                }
            }
        }
        found
    }

    #[tokio::test]
    async fn a_committed_upload_is_stored_under_its_hash_and_a_dropped_one_leaves_nothing() {
        // Proves the key is the content's SHA-256, and that both stages clean up after themselves.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let mut staged = storage.stage().await.unwrap();
        staged.write(b"hello ").await.unwrap();
        staged.write(b"world").await.unwrap();
        assert_eq!(staged.bytes(), 11);
        let committed = staged.commit(ImageFormat::Png).await.unwrap();
        let sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        assert_eq!(committed.sha256, sha);
        assert_eq!(committed.key.as_str(), format!("originals/b9/{sha}.png"));
        assert_eq!(
            std::fs::read(storage.path(&committed.key)).unwrap(),
            b"hello world"
        );
        drop(committed);
        assert!(files_under(dir.path()).is_empty(), "rolled back");

        let mut staged = storage.stage().await.unwrap();
        staged.write(b"partial").await.unwrap();
        drop(staged);
        assert!(files_under(dir.path()).is_empty(), "temp file removed");
    }

    #[tokio::test]
    async fn rolling_back_a_duplicate_keeps_the_original_stored_before_it() {
        // Proves an upload of content already stored never removes that content.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let mut first = storage.stage().await.unwrap();
        first.write(b"same").await.unwrap();
        let first = first.commit(ImageFormat::Gif).await.unwrap();
        let key = first.key.clone();
        assert_eq!(
            first.keep(),
            Some(key.clone()),
            "the first upload created the file"
        );
        let mut second = storage.stage().await.unwrap();
        second.write(b"same").await.unwrap();
        drop(second.commit(ImageFormat::Gif).await.unwrap());
        assert!(storage.path(&key).is_file());
    }
}
