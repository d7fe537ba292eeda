//! Putting a variant on disk so that readers see either the old file or the complete new one,
//! never a half-written one: write a temporary file in the same directory, flush it to disk,
//! then rename it over the final name.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::PipelineError;

/// Writes `bytes` to `{dir}/{name}.webp` atomically and returns that path. `name` must be a
/// validated variant name (a slug), so it cannot point outside `dir`.
pub(crate) fn write_variant(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, PipelineError> {
    let path = dir.join(format!("{name}.webp"));
    // Same directory as the target, so the rename never crosses file systems; a leading dot and
    // a .tmp suffix so nothing listing `*.webp` sees it, and a crash leaves it recognisable.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(PipelineError::io("create a temporary file in", dir))?;
    temp.write_all(bytes)
        .map_err(PipelineError::io("write", temp.path()))?;
    // Without this, a crash soon after the rename can leave an empty file under the final name
    // on file systems that reorder metadata and data writes.
    temp.as_file()
        .sync_data()
        .map_err(PipelineError::io("flush", temp.path()))?;
    // On error the temporary file is removed when `PersistError` drops it.
    temp.persist(&path)
        .map_err(|e| PipelineError::io("rename a temporary file to", &path)(e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_a_variant_replaces_the_old_file_and_leaves_no_temporary_files() {
        // Proves the final name holds the new bytes and the temporary file is gone.
        let dir = tempfile::tempdir().unwrap();
        write_variant(dir.path(), "thumb", b"old").unwrap();
        let path = write_variant(dir.path(), "thumb", b"new").unwrap();
        assert_eq!(path, dir.path().join("thumb.webp"));
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["thumb.webp"]);
    }

    #[test]
    fn writing_into_a_missing_directory_is_a_transient_io_error() {
        // Proves a vanished output directory is reported as I/O, which a retry may fix.
        let dir = tempfile::tempdir().unwrap();
        let err = write_variant(&dir.path().join("gone"), "thumb", b"x").unwrap_err();
        assert_eq!(err.code(), "io-error");
        assert!(!err.is_permanent());
    }
}
