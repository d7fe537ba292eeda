//! `VariantSink`: where [`super::process`] hands each encoded variant. The pipeline never names a
//! path; the caller's sink decides where bytes go (pixdrop's storage, a test's memory).

use std::io;

/// Receives each variant as soon as it is encoded, in the order of the specs.
pub trait VariantSink {
    /// Keeps `webp`, the variant named `name` (a validated slug). An error stops the job.
    fn put(&mut self, name: &str, webp: &[u8]) -> io::Result<()>;
}

/// Keeps every variant in memory, by name: for tests, benchmarks and callers that want the bytes.
impl VariantSink for Vec<(String, Vec<u8>)> {
    fn put(&mut self, name: &str, webp: &[u8]) -> io::Result<()> {
        self.push((name.to_owned(), webp.to_vec()));
        Ok(())
    }
}
