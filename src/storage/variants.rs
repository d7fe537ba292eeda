//! `VariantWriter`: the pipeline's sink for one job's variants. Each file is put in place so that
//! readers see either no file or the complete one, never a half-written one: written to a temp
//! file in the same directory, flushed to disk, then renamed over the final name.

use std::io::{self, Write};
use std::path::PathBuf;

use super::disk::with_path;
use super::key::StorageKey;
use crate::pipeline::VariantSink;
use crate::queue::JobId;

/// Writes one job's variants; the directory is created with the first file, so a job refused
/// before any variant is made leaves no trace.
pub struct VariantWriter {
    dir: PathBuf,
    job: JobId,
    written: Vec<StorageKey>,
}

impl VariantWriter {
    pub(super) fn new(dir: PathBuf, job: JobId) -> Self {
        Self {
            dir,
            job,
            written: Vec::new(),
        }
    }

    /// Writes the variant `name` (a validated slug, so it cannot point outside the job's
    /// directory) atomically and returns its key. Writing a name again replaces the file.
    pub fn write(&mut self, name: &str, webp: &[u8]) -> io::Result<StorageKey> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| with_path(e, "could not create", &self.dir))?;
        let key = StorageKey::variant(&self.job, name);
        let path = self.dir.join(format!("{name}.webp"));
        // A leading dot and a .tmp suffix: nothing listing `*.webp` sees it, and a crash leaves it
        // recognisable.
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| with_path(e, "could not create a temporary file in", &self.dir))?;
        temp.write_all(webp)
            .map_err(|e| with_path(e, "could not write", temp.path()))?;
        // Without this, a crash soon after the rename can leave an empty file under the final name
        // on file systems that reorder metadata and data writes.
        temp.as_file()
            .sync_data()
            .map_err(|e| with_path(e, "could not flush", temp.path()))?;
        // On error the temporary file is removed when `PersistError` drops it.
        temp.persist(&path)
            .map_err(|e| with_path(e.error, "could not rename a temporary file to", &path))?;
        self.written.push(key.clone());
        Ok(key)
    }

    /// The keys written, in order.
    pub fn written(&self) -> &[StorageKey] {
        &self.written
    }
}

impl VariantSink for VariantWriter {
    fn put(&mut self, name: &str, webp: &[u8]) -> io::Result<()> {
        self.write(name, webp).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[test]
    fn writing_a_variant_replaces_the_old_file_and_leaves_no_temporary_files() {
        // Proves the final name holds the new bytes, the temporary file is gone, and the job's
        // missing directory was created.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let job = JobId::new();
        let mut writer = storage.variant_writer(&job);
        writer.write("thumb", b"old").unwrap();
        let key = writer.write("thumb", b"new").unwrap();
        assert_eq!(key, StorageKey::variant(&job, "thumb"));
        let path = storage.media_file(&key);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["thumb.webp"]);
    }

    #[test]
    fn writing_where_the_directory_cannot_be_made_is_an_io_error() {
        // Proves a broken storage directory is reported as I/O, which a retry may fix.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let job = JobId::new();
        // A file where the job's directory should go.
        std::fs::write(dir.path().join("variants").join(job.to_string()), b"x").unwrap();
        let err = storage
            .variant_writer(&job)
            .write("thumb", b"x")
            .unwrap_err();
        assert!(err.to_string().starts_with("could not create"), "{err}");
    }
}
