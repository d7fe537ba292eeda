//! An upload on its way in: written to a temp file while it is hashed and counted, then committed
//! under its content's key. A staged upload dropped before its commit removes its temp file, so a
//! refused request leaves nothing behind; a committed original may be shared with other uploads
//! of the same bytes, and only the sweep removes it (see `crate::cleanup`).

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::disk::{Storage, sync_dir, with_path};
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

    /// The SHA-256 of what was written so far, in hex: the content's name, known before it is
    /// committed (an upload pins it first).
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Puts the upload under its content's key, `format` being what its bytes were sniffed as.
    /// The data is on disk, and the rename recorded in its directory, before this returns: the
    /// `202` that follows promises the file survives a crash. The same content may be stored
    /// already (the key is its hash): the rename replaces it with the same bytes.
    ///
    /// From here the file is shared with every upload of the same bytes, so it is never removed
    /// here, only by the sweep once Redis holds no reference to it (see `crate::cleanup`).
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
        let temp = self.temp.0.take().unwrap_or_default();
        tokio::fs::rename(&temp, &path)
            .await
            .map_err(|e| with_path(e, "could not move an upload to", &path))?;
        sync_dir_async(dir).await?;
        Ok(CommittedOriginal {
            key,
            sha256,
            bytes: self.bytes,
        })
    }

    /// Keeps the temp file past the drop, returning its path (tests age it by hand).
    #[cfg(test)]
    pub(super) fn leak_for_test(mut self) -> PathBuf {
        self.temp.0.take().unwrap_or_default()
    }
}

/// A committed original.
#[derive(Debug, Clone)]
pub struct CommittedOriginal {
    pub key: StorageKey,
    pub sha256: String,
    pub bytes: u64,
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

async fn sync_dir_async(dir: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || sync_dir(&dir))
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
        // Proves the key is the content's SHA-256, known before the commit, and that a staged
        // upload dropped before its commit cleans up after itself.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let mut staged = storage.stage().await.unwrap();
        staged.write(b"hello ").await.unwrap();
        staged.write(b"world").await.unwrap();
        assert_eq!(staged.bytes(), 11);
        let sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        assert_eq!(staged.sha256(), sha);
        let committed = staged.commit(ImageFormat::Png).await.unwrap();
        assert_eq!(committed.sha256, sha);
        assert_eq!(committed.key.as_str(), format!("originals/b9/{sha}.png"));
        assert_eq!(
            std::fs::read(storage.path(&committed.key)).unwrap(),
            b"hello world"
        );
        let stored = files_under(dir.path());

        let mut staged = storage.stage().await.unwrap();
        staged.write(b"partial").await.unwrap();
        drop(staged);
        assert_eq!(files_under(dir.path()), stored, "temp file removed");
    }

    #[tokio::test]
    async fn committing_the_same_bytes_twice_keeps_one_file() {
        // Proves a second upload of stored content replaces it with the same bytes, in place.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        for _ in 0..2 {
            let mut staged = storage.stage().await.unwrap();
            staged.write(b"same").await.unwrap();
            staged.commit(ImageFormat::Gif).await.unwrap();
        }
        assert_eq!(files_under(dir.path()).len(), 1);
    }
}
